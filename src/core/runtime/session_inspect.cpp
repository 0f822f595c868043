// Inspection: building XState-shaped inspection events at the session's hook points.
#include "session_impl.hpp"

#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/inspection.hpp>
#include <xsn/runtime/session.hpp>

namespace xsn::inline v0 {

std::string_view inspection_type_name(inspection_kind k) noexcept {
  switch (k) {
    case inspection_kind::actor: return "@xstate.actor";
    case inspection_kind::event: return "@xstate.event";
    case inspection_kind::snapshot: return "@xstate.snapshot";
    case inspection_kind::microstep: return "@xstate.microstep";
    case inspection_kind::action: return "@xstate.action";
    case inspection_kind::diagnostic: return "@xsn.diagnostic";
  }
  return "@xstate.unknown";
}

namespace {

value event_json(const xsn::event& ev) {
  boost::json::object o{{"type", ev.name}};
  if (!ev.data.is_null()) o["data"] = ev.data;
  return o;
}

value actor_ref(std::string_view id) { return boost::json::object{{"sessionId", id}}; }

/// `_transitions` as XState shows a transition definition: source, targets, event type.
value transitions_json(const statechart& c, std::span<const transition_index> ts) {
  boost::json::array out;
  for (auto ti : ts) {
    const auto& t = c.transitions[ti];
    boost::json::array targets;
    for (auto s : t.targets) targets.emplace_back(c.states[s].id);
    boost::json::array events;
    if (t.any_event) events.emplace_back("*");
    for (auto n : t.events) events.emplace_back(c.names[n]);
    boost::json::object o{{"source", t.source == npos ? std::string() : c.states[t.source].id}, {"target", std::move(targets)}};
    o["eventType"] = events.empty() ? value(nullptr) : events.size() == 1 ? value(events[0]) : value(std::move(events));
    out.push_back(std::move(o));
  }
  return out;
}

// The `event` and `snapshot` members of a snapshot or microstep event (and its transitions).
void add_snapshot_fields(boost::json::object& o, const inspection_event& e) {
  o["event"] = e.event ? event_json(*e.event) : value(nullptr);
  if (e.snapshot) o["snapshot"] = *e.snapshot;
  if (e.kind == inspection_kind::microstep && e.chart) o["_transitions"] = transitions_json(*e.chart, e.transitions);
}

// The `diagnostic` member: its kind, then the fields of the report that are not empty.
value diagnostic_json(const runtime_diagnostic& d) {
  boost::json::object o{{"kind", to_string(d.kind)}};
  for (auto [key, v] : {std::pair{"event", d.event}, std::pair{"state", d.state},
                        std::pair{"reason", to_string(d.reason)}, std::pair{"message", d.message}})
    if (!v.empty()) o[key] = v;
  return o;
}

// The `parentRef` of an actor event.
void add_actor_fields(boost::json::object& o, const inspection_event& e) {
  if (!e.parent_id.empty()) o["parentRef"] = actor_ref(e.parent_id);
}

// The `sourceRef` and `event` of an event event.
void add_event_fields(boost::json::object& o, const inspection_event& e) {
  o["sourceRef"] = e.source_id.empty() ? value(nullptr) : actor_ref(e.source_id);
  if (e.event) o["event"] = event_json(*e.event);
}

// The `action` of an action event: its type and params (an empty object when it has none).
value action_json(const inspection_event& e) {
  return boost::json::object{{"type", e.action_type},
                             {"params", e.action_params ? *e.action_params : value(boost::json::object{})}};
}

// The members that only events of kind `e.kind` carry.
void add_kind_fields(boost::json::object& o, const inspection_event& e) {
  switch (e.kind) {
    case inspection_kind::actor: add_actor_fields(o, e); break;
    case inspection_kind::event: add_event_fields(o, e); break;
    case inspection_kind::snapshot:
    case inspection_kind::microstep: add_snapshot_fields(o, e); break;
    case inspection_kind::action: o["action"] = action_json(e); break;
    case inspection_kind::diagnostic:
      if (e.diagnostic) o["diagnostic"] = diagnostic_json(*e.diagnostic);
      break;
  }
}

}  // namespace

value to_json(const inspection_event& e) {
  boost::json::object o{{"type", e.type()}, {"rootId", e.root_id}, {"actorRef", actor_ref(e.session_id)}};
  add_kind_fields(o, e);
  return o;
}

namespace detail {

namespace {

/// The session id in an SCXML `_event.origin` (`#_scxml_<id>`), else empty.
std::string_view origin_session(const xsn::event& ev) {
  std::string_view o = ev.origin;
  constexpr std::string_view prefix = "#_scxml_";
  return o.substr(0, prefix.size()) == prefix ? o.substr(prefix.size()) : std::string_view();
}

/// Text of expression `e`, or null when there is none.
value expr_text(const statechart& c, expr_index e) {
  return e == npos || e >= c.expressions.size() ? value(nullptr) : value(c.expressions[e].text);
}

struct action_describer {
  const statechart& c;
  boost::json::object& params;  // the static attributes of an SCXML element
  value* whole;                 // replaces them all (XState's `params`, any JSON)

  std::string_view operator()(const raise_action& r) const {
    params["event"] = r.event;
    return "raise";
  }
  std::string_view operator()(const send_action& s) const {
    if (s.eventexpr != npos) params["eventexpr"] = expr_text(c, s.eventexpr);
    else params["event"] = s.event;
    if (!s.target.empty()) params["target"] = s.target;
    if (s.targetexpr != npos) params["targetexpr"] = expr_text(c, s.targetexpr);
    if (!s.id.empty()) params["id"] = s.id;
    if (s.delay.count() > 0) params["delay"] = s.delay.count();
    if (s.delayexpr != npos) params["delayexpr"] = expr_text(c, s.delayexpr);
    return "send";
  }
  std::string_view operator()(const cancel_action& a) const {
    if (a.sendidexpr != npos) params["sendidexpr"] = expr_text(c, a.sendidexpr);
    else params["sendid"] = a.sendid;
    return "cancel";
  }
  std::string_view operator()(const log_action& l) const {
    params["label"] = l.label;
    if (l.expr != npos) params["expr"] = expr_text(c, l.expr);
    return "log";
  }
  std::string_view operator()(const assign_action& a) const {
    params["location"] = expr_text(c, a.location);
    if (a.expr != npos) params["expr"] = expr_text(c, a.expr);
    return "assign";
  }
  std::string_view operator()(const script_action& a) const {
    // An XState chart's named action is a script expression standing for an action site.
    if (!c.xstate || a.script >= c.xstate->exprs.size()) return "script";
    const auto& ref = c.xstate->exprs[a.script];
    if (ref.kind != xstate_program::expr_kind::action || ref.index >= c.xstate->actions.size()) return "script";
    const auto& site = c.xstate->actions[ref.index];
    if (!site.params.is_null()) *whole = site.params;
    return site.name < c.xstate->action_names.size() ? std::string_view(c.xstate->action_names[site.name]) : "action";
  }
  std::string_view operator()(const if_action&) const { return "if"; }
  std::string_view operator()(const foreach_action& f) const {
    params["array"] = expr_text(c, f.array);
    params["item"] = expr_text(c, f.item);
    if (f.index != npos) params["index"] = expr_text(c, f.index);
    return "foreach";
  }
  std::string_view operator()(const native_action& n) const { return n.name; }
  /// Kinds of executable content this inspector does not know yet.
  template <class Other>
  std::string_view operator()(const Other&) const {
    return "action";
  }
};

}  // namespace

void inspect_actor(const inspector& fn, inspection_event base, std::string_view parent_id) {
  base.kind = inspection_kind::actor;
  base.parent_id = parent_id;
  fn(base);
}

void inspect_event(const inspector& fn, inspection_event base, const xsn::event& ev) {
  base.kind = inspection_kind::event;
  base.event = &ev;
  base.source_id = origin_session(ev);
  fn(base);
}

void inspect_snapshot(const inspector& fn, inspection_event base, const xsn::event& ev, const value& state) {
  base.kind = inspection_kind::snapshot;
  base.event = &ev;
  base.snapshot = &state;
  fn(base);
}

void inspect_microstep(const inspector& fn, inspection_event base, const xsn::event* ev, const value& state,
                       std::span<const transition_index> transitions) {
  base.kind = inspection_kind::microstep;
  base.event = ev;
  base.snapshot = &state;
  base.transitions = transitions;
  fn(base);
}

void inspect_action(const inspector& fn, inspection_event base, const action& a) {
  base.kind = inspection_kind::action;
  boost::json::object params;
  value whole;
  base.action_type = std::visit(action_describer{*base.chart, params, &whole}, a.op);
  value p = whole.is_null() ? value(std::move(params)) : std::move(whole);
  base.action_params = &p;
  fn(base);
}

void inspect_diagnostic(const inspector& fn, inspection_event base, const runtime_diagnostic& d) {
  base.kind = inspection_kind::diagnostic;
  base.diagnostic = &d;
  fn(base);
}

}  // namespace detail
// ---- a session's inspection hooks ----

inspection_event session::impl::inspection_base() {
  const impl* root = this;
  while (root->cold_ && root->cold_->parent_) root = root->cold_->parent_;
  inspection_event e;
  e.root_id = root->id_;
  e.actor = &self_;
  e.session_id = id_;
  e.chart = &c_;
  return e;
}

void session::impl::inspect_started() {
  ext().current = event("xstate.init");
  const auto* parent = cold_ ? cold_->parent_ : nullptr;
  detail::inspect_actor(opts_.inspect, inspection_base(), parent ? std::string_view(parent->id_) : std::string_view());
  event init = ext().current;
  if (parent) init.origin = "#_scxml_" + parent->id_;
  detail::inspect_event(opts_.inspect, inspection_base(), init);
}

void session::impl::inspect_received(const event& ev) {
  ext().current = ev;
  detail::inspect_event(opts_.inspect, inspection_base(), ev);
}

void session::impl::inspect_step() {
  detail::inspect_microstep(opts_.inspect, inspection_base(), &ext().current, inspection_state(),
                            std::span<const transition_index>(enabled_.begin(), enabled_.end()));
}

void session::impl::after_macrostep(const event& ev) {
  if (opts_.inspect) detail::inspect_snapshot(opts_.inspect, inspection_base(), ev, inspection_state());
  if (cold_ && cold_->ext_ && !cold_->ext_->waiters.empty())
    cold_->ext_->waiters.complete_processed(ex_, [&] { return self_.active_atomic_states(); });
}

}  // namespace xsn::inline v0
