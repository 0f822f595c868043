// `session::impl`: snapshots, and restoring a session from one.
#include "session_impl.hpp"

#include <algorithm>

namespace xsn::inline v0 {

namespace {

using detail::event_to_json;

/// Reads an array of strings; false when `v` is not one.
bool string_list(const value* v, std::vector<std::string>& out) {
  if (!v) return true;
  if (!v->is_array()) return false;
  for (const auto& x : v->as_array()) {
    if (!x.is_string()) return false;
    out.emplace_back(x.as_string());
  }
  return true;
}

/// `v` is there and of kind `k`.
bool is_a(const value* v, boost::json::kind k) { return v && v->kind() == k; }

/// Reads `o[key]` into `out` when it is a string (other values are ignored, as they always were).
void optional_string(const boost::json::object& o, std::string_view key, std::string& out) {
  if (const auto* v = o.if_contains(key); v && v->is_string()) out = std::string(v->as_string());
}

/// Reads XState's `[{"id": ...}]` (or the plain strings older snapshots hold); false when malformed.
bool id_list(const value* v, std::vector<std::string>& out) {
  if (!v || !v->is_array()) return false;
  for (const auto& x : v->as_array()) {
    const auto* o = x.if_object();
    const auto* id = o ? o->if_contains("id") : &x;
    if (!id || !id->is_string()) return false;
    out.emplace_back(id->as_string());
  }
  return true;
}

}  // namespace

value session::impl::state_value(state_index s) const {
  if (s == 0 && c_.semantics == chart_semantics::xstate)
    return state_value_of(c_, [this](state_index x) { return config_.test(x); });
  // XState's state value: an atomic child is its id; a compound child maps its id to its value;
  // a parallel state maps each region to its value.
  const auto& st = c_.states[s];
  if (st.kind == state_kind::parallel) {
    boost::json::object o;
    for (auto ch : st.children) o[c_.states[ch].id] = c_.is_atomic(ch) ? value(c_.states[ch].id) : state_value(ch);
    return o;
  }
  for (auto ch : st.children) {
    if (!config_.test(ch)) continue;
    if (c_.is_atomic(ch)) return value(c_.states[ch].id);
    return boost::json::object{{c_.states[ch].id, state_value(ch)}};
  }
  return boost::json::object{};
}

namespace {

// Puts `a` at `key` unless it is empty: a stored snapshot of an idle machine stays small.
void put_unless_empty(boost::json::object& o, std::string_view key, boost::json::array a) {
  if (!a.empty()) o[key] = std::move(a);
}

// The ids of the states whose flag is set in `flags` (one per state), in document order.
boost::json::array flagged_ids(const statechart& c, const std::vector<bool>& flags) {
  boost::json::array ids;
  for (state_index s = 0; s < c.states.size(); ++s)
    if (flags[s]) ids.emplace_back(c.states[s].id);
  return ids;
}

// The events of `queue`, oldest first.
boost::json::array events_json(const detail::ring_queue<event>& queue) {
  boost::json::array out;
  queue.for_each([&](const event& ev) { out.push_back(event_to_json(ev)); });
  return out;
}

// The snapshot entries of `self`'s children with something to keep, by invoke id.
boost::json::object children_json(session::impl& self) {
  boost::json::object children;
  static std::map<std::string, session::impl::child> no_children;  // never modified: stands for an absent cold_
  for (auto& [invokeid, ch] : self.cold_ ? self.cold_->children_ : no_children)
    if (auto e = self.child_json(ch); !e.is_null()) children[invokeid] = std::move(e);
  return children;
}

}  // namespace

value session::impl::snapshot() {
  boost::json::object o;
  o["status"] = status_text();
  if (mode_.errored) o["error"] = cold().error_;  // XState's `error` (here its message)
  o["value"] = state_value(0);
  if (auto out = xstate_output(); !out.is_null()) o["output"] = std::move(out);
  boost::json::array configuration;
  config_.for_each([&](state_index s) { configuration.emplace_back(c_.states[s].id); });
  o["configuration"] = std::move(configuration);
  o["historyValue"] = history_json();
  o["context"] = dm_->save();
  o["sessionid"] = id_;
  if (c_.binding == binding_mode::late) put_unless_empty(o, "entered", flagged_ids(c_, cold().entered_once_));
  // Empty parts are left out: a stored snapshot of an idle machine stays small.
  put_unless_empty(o, "pending", pending_json());
  put_unless_empty(o, "queue", events_json(external_));
  if (send_counter_) o["sendCounter"] = send_counter_;
  o["children"] = children_json(*this);
  return o;
}

boost::json::object session::impl::history_json() const {
  boost::json::object history;
  for (state_index h = 0; mode_.has_histories && h < c_.states.size(); ++h) {
    if (!cold().has_history_[h]) continue;
    boost::json::array ids;
    for (auto s : cold().history_[h]) ids.emplace_back(boost::json::object{{"id", c_.states[s].id}});  // as XState
    history[c_.states[h].id] = std::move(ids);
  }
  return history;
}

boost::json::array session::impl::pending_json() const {
  boost::json::array pending;
  const auto now = clock_.now();
  static const std::map<std::uint64_t, pending_send> no_pending;
  for (const auto& [key, p] : cold_ ? cold_->delayed_ : no_pending) {
    auto remaining = p.due > now ? p.due - now : clock::duration::zero();
    pending.push_back(boost::json::object{{"sendid", p.sendid},
                                          {"remaining_ns", std::chrono::nanoseconds(remaining).count()},
                                          {"due_ns", std::chrono::nanoseconds(p.due.time_since_epoch()).count()},
                                          {"target", p.target},
                                          {"event", event_to_json(p.ev)}});
  }
  return pending;
}

namespace {

/// A promise or callback actor's snapshot: whether it still runs, and its input.
value native_actor_json(const detail::native_actor* actor) {
  return boost::json::object{{"status", actor && !actor->finished() ? "active" : "done"},
                             {"input", actor ? actor->input() : value()}};
}

}  // namespace

value session::impl::child_json(const child& ch) {
  if (ch.logic) {  // an XState actor: `snapshot`, `src`, `systemId`, and the invoke's index
    boost::json::object e{{"src", ch.logic->name}};
    e["snapshot"] = ch.s ? ch.s->impl_->snapshot() : native_actor_json(ch.actor.get());
    if (!ch.system_id.empty()) e["systemId"] = ch.system_id;
    if (ch.decl != npos) e["invoke"] = ch.decl;
    return e;
  }
  if (!ch.s) return nullptr;
  // XState's entry (`snapshot`, `src`) plus the invoke declaration's index.
  const auto& inv = c_.invokes[ch.decl];
  return boost::json::object{
      {"snapshot", ch.s->impl_->snapshot()}, {"src", inv.src.empty() ? "inline" : inv.src}, {"invoke", ch.decl}};
}

std::shared_ptr<const statechart> session::impl::child_chart(std::uint32_t decl, std::string& error) {
  const auto& inv = c_.invokes[decl];
  if (inv.body && inv.body->chart != npos) return c_.inline_charts[inv.body->chart];
  if (inv.body || inv.srcexpr != npos) {
    error = "a child invoked from an expression cannot be restored";
    return nullptr;
  }
  const auto path = detail::invoke_path(inv.src, c_.base_dir);
  auto pr = load_document(path);
  if (!pr) {
    error = pr.errors.empty() ? "cannot load " + path.string() : pr.errors.front().to_string();
    return nullptr;
  }
  return pr.chart;
}

// ---- restore: read every section (nothing changes), then apply with one undo ----

/// A snapshot read and checked: all `restore` applies, gathered before anything changes.
struct session::impl::snapshot_in {
  /// A delayed send, its remaining time already on this clock's time base.
  struct pending {
    std::string sendid;
    clock::duration remaining;
    std::string target;
    event ev;
  };
  /// An SCXML child: its `<invoke>`, its snapshot, and its chart (loaded while reading).
  struct child {
    std::string invokeid;
    std::uint32_t decl;
    const value* snap;
    std::shared_ptr<const statechart> chart;
  };
  /// An XState actor: a machine is restored, a promise or callback actor restarted.
  struct actor {
    std::string id;
    std::shared_ptr<const bound_actor> logic;
    std::uint32_t decl;
    const value* snap;
    std::string system_id;
    value input;
  };

  explicit snapshot_in(const boost::json::object& snap, std::size_t states) : o(snap), config(states) {}
  const boost::json::object& o;  // the snapshot (`context`, `sessionid`, `error`, `sendCounter` are read when applied)
  detail::bitset config;
  std::vector<std::pair<state_index, std::vector<state_index>>> history;
  std::vector<std::string> entered;
  std::vector<pending> delayed;
  std::vector<event> queue;
  std::vector<child> children;
  std::vector<actor> actors;
  std::string status = "active";
};

namespace {

/// Reads a snapshot into a `snapshot_in`, one section per function, each returning why it refuses
/// the snapshot (empty: accepted). It only reads the session (the chart, the datamodel's bound
/// actors, the clock's time, the options); loading a child's chart is the one thing it does.
class snapshot_reader {
 public:
  using snapshot_in = session::impl::snapshot_in;
  snapshot_reader(session::impl& s, snapshot_in& in) : s_(s), c_(s.c_), o_(in.o), in_(in) {}

  /// Reads the sections in the order their errors are reported.
  std::string read() {
    using section = std::string (snapshot_reader::*)();
    for (section read_section : {&snapshot_reader::configuration, &snapshot_reader::history, &snapshot_reader::entered,
                                 &snapshot_reader::pending, &snapshot_reader::queue, &snapshot_reader::children,
                                 &snapshot_reader::status})
      if (auto why = (this->*read_section)(); !why.empty()) return why;
    return {};
  }

 private:
  // Times beyond ~73 years are refused: adding them to the clock's time could overflow.
  static constexpr std::int64_t max_ns = std::int64_t(1) << 61;

  std::string configuration() {
    std::vector<std::string> ids;
    if (!string_list(o_.if_contains("configuration"), ids)) return "`configuration` is not an array of state ids";
    for (const auto& id : ids) {
      auto s = c_.find_state(id);
      if (s == npos || s == 0 || c_.states[s].kind == state_kind::history)
        return "`configuration`: '" + id + "' is no state of this chart, or a history state";
      in_.config.set(s);
    }
    return legal_configuration(ids.empty());
  }

  /// A legal configuration: parents active, one child of a compound, every region of a parallel.
  /// An empty one (a machine that never started) is legal too.
  std::string legal_configuration(bool empty) const {
    const auto& config = in_.config;
    for (state_index s = 1; s < c_.states.size(); ++s) {
      const auto p = c_.states[s].parent;
      if (config.test(s) && p != 0 && !config.test(p))
        return "`configuration`: '" + c_.states[s].id + "' is active without its parent";
    }
    return active_children(empty);
  }

  std::string active_children(bool empty) const {
    const auto& config = in_.config;
    for (state_index s = 0; s < c_.states.size(); ++s) {
      if (s != 0 && !config.test(s)) continue;
      const auto& st = c_.states[s];
      const auto active = static_cast<std::size_t>(
          std::count_if(st.children.begin(), st.children.end(), [&](state_index ch) { return config.test(ch); }));
      const bool may_be_empty = s == 0 && empty;  // the root of a machine that never started
      if (st.kind == state_kind::compound && active != 1 && !may_be_empty)
        return "`configuration`: compound state '" + st.id + "' needs exactly one active child";
      if (st.kind == state_kind::parallel && active != st.children.size())
        return "`configuration`: every region of parallel state '" + st.id + "' must be active";
    }
    return {};
  }

  std::string history() {
    const auto* h = o_.if_contains("historyValue");
    if (!h) return {};
    if (!h->is_object()) return "`historyValue` is not an object";
    for (const auto& [hid, list] : h->as_object())
      if (auto why = history_entry(std::string(hid), list); !why.empty()) return why;
    return {};
  }

  std::string history_entry(const std::string& hid, const value& list) {
    auto hs = c_.find_state(hid);
    std::vector<std::string> stored;
    if (hs == npos || c_.states[hs].kind != state_kind::history || !id_list(&list, stored))
      return "`historyValue`: '" + hid + "' is no history state, or its entry is no list of states";
    std::vector<state_index> states;
    for (const auto& id : stored) {
      auto s = c_.find_state(id);
      if (s == npos || !c_.is_descendant(s, c_.states[hs].parent)) return "`historyValue`: '" + hid + "' cannot hold '" + id + "'";
      states.push_back(s);
    }
    in_.history.emplace_back(hs, std::move(states));
    return {};
  }

  std::string entered() {
    if (!string_list(o_.if_contains("entered"), in_.entered)) return "`entered` is not an array of state ids";
    return {};
  }

  std::string pending() {
    const auto* p = o_.if_contains("pending");
    if (!p) return {};
    if (!p->is_array()) return "`pending` is not an array";
    for (const auto& x : p->as_array())
      if (auto why = pending_entry(x); !why.empty()) return why;
    return {};
  }

  std::string pending_entry(const value& x) {
    const auto* po = x.if_object();
    if (!po || !po->contains("event") || !po->contains("remaining_ns") || !po->at("remaining_ns").is_int64())
      return "`pending`: an entry needs `event` and an integer `remaining_ns`";
    snapshot_in::pending in;
    if (!detail::event_from_json(po->at("event"), in.ev)) return "`pending`: malformed event";
    auto ns = po->at("remaining_ns").as_int64();
    if (ns < 0 || ns > max_ns) return "`pending`: `remaining_ns` out of range: " + std::to_string(ns);
    in.remaining = std::chrono::nanoseconds(ns);
    if (auto why = due_time(po->if_contains("due_ns"), in); !why.empty()) return why;
    optional_string(*po, "sendid", in.sendid);
    optional_string(*po, "target", in.target);
    in_.delayed.push_back(std::move(in));
    return {};
  }

  // With the due time on this clock's time base, the time that passed since the snapshot counts
  // (a restart on the same host); a due time further away than the remaining time means another
  // time base (another host, a reboot), and the remaining time is kept.
  std::string due_time(const value* due, snapshot_in::pending& in) const {
    if (!due) return {};
    if (!due->is_int64() || due->as_int64() < 0 || due->as_int64() > max_ns) return "`pending`: `due_ns` is not a time of a clock";
    auto left = clock::time_point(std::chrono::nanoseconds(due->as_int64())) - s_.clock_.now();
    in.remaining = std::clamp(left, clock::duration::zero(), in.remaining);
    return {};
  }

  std::string queue() {
    const auto* q = o_.if_contains("queue");
    if (!q) return {};
    if (!q->is_array() || q->as_array().size() > s_.opts_.queue_capacity)
      return "`queue` is not an array within the queue's capacity";
    for (const auto& x : q->as_array()) {
      event ev;
      if (!detail::event_from_json(x, ev)) return "`queue`: malformed event";
      in_.queue.push_back(std::move(ev));
    }
    return {};
  }

  std::string children() {
    const auto* ch = o_.if_contains("children");
    if (!ch) return {};
    if (!ch->is_object()) return "`children` is not an object";
    const bool xstate = c_.semantics == chart_semantics::xstate;
    for (const auto& [key, entry] : ch->as_object())
      if (auto why = xstate ? actor(std::string(key), entry) : child(std::string(key), entry); !why.empty()) return why;
    return {};
  }

  /// An XState chart's child: `src` names a provided actor, `invoke` (if any) an invoke of it.
  std::string actor(const std::string& id, const value& entry) {
    const auto* eo = entry.if_object();
    const auto* src = eo ? eo->if_contains("src") : nullptr;
    const auto* sn = eo ? eo->if_contains("snapshot") : nullptr;
    if (!is_a(src, boost::json::kind::string) || !is_a(sn, boost::json::kind::object))
      return "`children`: '" + id + "' needs `src` (a string) and `snapshot` (an object)";
    const auto* b = detail::xstate_bound(*s_.dm_);
    auto logic = b ? detail::find_bound_actor(*b, src->as_string()) : nullptr;
    if (!logic) return "`children`: '" + id + "': actor '" + std::string(src->as_string()) + "' is not provided";
    snapshot_in::actor in{id, logic, npos, sn, {}, nullptr};
    if (auto why = actor_fields(*eo, src->as_string(), in); !why.empty()) return why;
    return actor_snapshot(sn->as_object(), std::move(in));
  }

  /// Keeps the actor unless it is a promise or callback actor that finished (its done event is
  /// queued, if still due); such an actor restarts with its `input`.
  std::string actor_snapshot(const boost::json::object& sn, snapshot_in::actor in) {
    const auto* st = sn.if_contains("status");
    if (st && !st->is_string()) return "`children`: the `status` of '" + in.id + "' is not a string";
    const bool native = !std::holds_alternative<actor_logic::machine_logic>(in.logic->logic.kind);
    if (native && st && st->as_string() != "active") return {};
    if (const auto* input = sn.if_contains("input")) in.input = *input;
    in_.actors.push_back(std::move(in));
    return {};
  }

  /// An actor's `invoke` (the index of an invoke of `src`) and `systemId`, when present.
  std::string actor_fields(const boost::json::object& eo, std::string_view src, snapshot_in::actor& in) const {
    if (const auto* d = eo.if_contains("invoke")) {
      if (!d->is_int64() || d->as_int64() < 0 || static_cast<std::uint64_t>(d->as_int64()) >= c_.invokes.size() ||
          c_.invokes[static_cast<std::size_t>(d->as_int64())].src != src)
        return "`children`: `invoke` of '" + in.id + "' is no invoke of this chart with that `src`";
      in.decl = static_cast<std::uint32_t>(d->as_int64());
    }
    if (const auto* sid = eo.if_contains("systemId")) {
      if (!sid->is_string()) return "`children`: `systemId` of '" + in.id + "' is not a string";
      in.system_id = std::string(sid->as_string());
    }
    return {};
  }

  /// An SCXML chart's child: its `<invoke>` by index (or, in XState's shape, by id), chart loaded.
  std::string child(const std::string& invokeid, const value& entry) {
    const auto* eo = entry.if_object();
    if (!eo || !eo->contains("snapshot")) return "`children`: '" + invokeid + "' has no `snapshot`";
    std::int64_t decl = -1;
    if (auto why = invoke_index(invokeid, *eo, decl); !why.empty()) return why;
    if (decl < 0 || static_cast<std::uint64_t>(decl) >= c_.invokes.size())
      return "`children`: '" + invokeid + "' matches no <invoke> of this chart";
    std::string error;
    auto chart = s_.child_chart(static_cast<std::uint32_t>(decl), error);
    if (!chart) return "`children`: '" + invokeid + "': " + error;
    in_.children.push_back({invokeid, static_cast<std::uint32_t>(decl), &eo->at("snapshot"), std::move(chart)});
    return {};
  }

  /// The declaration's index; XState's shape has none: then the `<invoke id>` it was made from.
  std::string invoke_index(const std::string& invokeid, const boost::json::object& eo, std::int64_t& decl) const {
    if (const auto* d = eo.if_contains("invoke")) {
      if (!d->is_int64()) return "`children`: `invoke` of '" + invokeid + "' is not an integer";
      decl = d->as_int64();
      return {};
    }
    for (std::size_t i = 0; i < c_.invokes.size(); ++i)
      if (c_.invokes[i].id == invokeid) decl = static_cast<std::int64_t>(i);
    return {};
  }

  std::string status() {
    const auto* st = o_.if_contains("status");
    if (!st) return {};
    if (!st->is_string()) return "`status` is not a string";
    in_.status = std::string(st->as_string());
    if (in_.status != "active" && in_.status != "done" && in_.status != "stopped" && in_.status != "error")
      return "unknown `status` '" + in_.status + "'";
    return {};
  }

  session::impl& s_;
  const statechart& c_;
  const boost::json::object& o_;
  snapshot_in& in_;
};

}  // namespace

std::error_code session::impl::restore(const value& snap) {
  if (mode_.started) return errc::not_running;
  const auto* o = snap.if_object();
  std::string why = "not a JSON object";
  if (o) {
    snapshot_in in(*o, c_.states.size());
    why = snapshot_reader(*this, in).read();
    if (why.empty()) why = apply_snapshot(in);
  }
  if (why.empty()) return {};
  // Every refusal says why, through `on_log` (label `error`).
  if (opts_.on_log) opts_.on_log("error", "snapshot refused: " + why);
  return errc::bad_snapshot;
}

std::string session::impl::apply_snapshot(snapshot_in& in) {
  if (auto r = dm_->setup(c_, *this); !r) return "the datamodel cannot be set up: " + r.error().message;
  if (const auto* ctx = in.o.if_contains("context")) {
    if (auto r = dm_->restore(*ctx); !r) return "`context`: " + r.error().message;
  }
  const std::string old_id = id_;
  const bool had_registry = cold_ && cold_->registry_;
  adopt_session_id(in);
  if (opts_.inspect) [[unlikely]] inspect_restored();
  // Children first: one whose snapshot does not fit fails the whole restore, undone here.
  if (in.status == "active") {
    if (auto why = restore_children(in); !why.empty()) {
      undo_children(old_id, had_registry);
      return why;
    }
  }
  apply_state(in);
  if (mode_.running) resume_timers_and_queue(in);
  return {};
}

void session::impl::inspect_restored() {
  detail::inspect_actor(opts_.inspect, inspection_base(), cold_ && cold_->parent_ ? std::string_view(cold_->parent_->id_) : "");
}

// The snapshot's id, unless ours was given or another session of the tree has it.
void session::impl::adopt_session_id(const snapshot_in& in) {
  if (const auto* sid = in.o.if_contains("sessionid"); sid && sid->is_string() && !mode_.fixed_id &&
                                                         !(cold().registry_ && cold().registry_->sessions.count(std::string(sid->as_string()))))
    id_ = std::string(sid->as_string());
  if (cold_ && cold_->registry_) cold_->registry_->sessions[id_] = this;
}

std::string session::impl::restore_children(snapshot_in& in) {
  for (auto& k : in.children) {
    auto& child = make_child(k.invokeid, std::move(k.chart), k.decl);
    if (child.impl_->restore(*k.snap)) return "child '" + k.invokeid + "' does not fit";
  }
  for (auto& k : in.actors) {  // XState actors: machines restored, promise and callback actors restarted
    auto err = start_actor(k.logic, k.id, k.system_id, k.input, k.decl, k.snap);
    if (!err.empty()) return "child '" + k.id + "': " + err;
  }
  return {};
}

void session::impl::undo_children(const std::string& old_id, bool had_registry) {
  for (auto& [cid, c] : cold().children_)
    if (!c.system_id.empty()) cold().registry_->system.erase(c.system_id);
  cold().children_.clear();
  if (had_registry) cold().registry_->sessions.erase(id_);
  else cold().registry_.reset();
  id_ = old_id;
  if (had_registry) cold().registry_->sessions[id_] = this;
}

void session::impl::apply_state(snapshot_in& in) {
  mode_.started = true;
  if (const auto* sc = in.o.if_contains("sendCounter"); sc && sc->is_int64()) send_counter_ = static_cast<std::uint64_t>(sc->as_int64());
  config_ = in.config;
  if (mode_.big) big_config_.assign(in.config);
  xstate_order_.clear();
  if (mode_.track_order) config_.for_each([&](state_index x) { xstate_order_.push_back(x); });
  for (auto& [h, states] : in.history) {
    cold().history_[h] = std::move(states);
    cold().has_history_[h] = true;
  }
  for (const auto& id : in.entered) {
    auto s = c_.find_state(id);
    if (s != npos && !cold().entered_once_.empty()) cold().entered_once_[s] = true;
  }
  apply_status(in);
}

void session::impl::apply_status(const snapshot_in& in) {
  mode_.running = in.status == "active";
  mode_.ended = !mode_.running;
  mode_.cancelled = in.status == "stopped" || in.status == "error";  // and stays so, not `done`
  mode_.errored = in.status == "error";  // (was reported as `stopped` once restored)
  if (const auto* e = in.o.if_contains("error"); mode_.errored && e && e->is_string()) cold().error_ = std::string(e->as_string());
}

// XState: timer events keep being ours (withdrawn on exit) when we restore under another id.
void session::impl::adopt_timer_events(snapshot_in& in) {
  const auto* sid = in.o.if_contains("sessionid");
  if (!mode_.xstate || !sid || !sid->is_string() || sid->as_string() == id_) return;
  const std::string was = "#_scxml_" + std::string(sid->as_string());
  auto adopt = [&](event& ev) {
    if (!ev.sendid.empty() && ev.origin == was) ev.origin = "#_scxml_" + id_;
  };
  for (auto& p : in.delayed) adopt(p.ev);
  for (auto& ev : in.queue) adopt(ev);
}

void session::impl::resume_timers_and_queue(snapshot_in& in) {
  adopt_timer_events(in);
  for (auto& p : in.delayed) schedule_send(std::move(p.sendid), std::move(p.ev), std::move(p.target), clock_.now() + p.remaining);
  for (auto& ev : in.queue) {
    if (mode_.xstate && own_timer_event(ev)) ++queued_timer_events_;
    external_.push_back(std::move(ev));
  }
  if (!external_.empty() || !internal_.empty()) post_drain();
}

}  // namespace xsn::inline v0
