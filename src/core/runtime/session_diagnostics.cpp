// Runtime diagnostics: their names, the `xsn.session` log of a session without a hook, and a
// session's reports (`session::impl::report`).
#include <xsn/runtime/diagnostics.hpp>

#include "core/logging_detail.hpp"
#include "session_impl.hpp"

namespace xsn::inline v0 {

std::string_view to_string(diagnostic_kind k) noexcept {
  switch (k) {
    case diagnostic_kind::execution_error: return "execution_error";
    case diagnostic_kind::communication_error: return "communication_error";
    case diagnostic_kind::guard_error: return "guard_error";
    case diagnostic_kind::unbound_action: return "unbound_action";
    case diagnostic_kind::event_ignored: return "event_ignored";
  }
  return "unknown";
}

std::string_view to_string(ignore_reason r) noexcept {
  switch (r) {
    case ignore_reason::none: return "";
    case ignore_reason::no_transition: return "no_transition";
    case ignore_reason::guards_false: return "guards_false";
    case ignore_reason::guard_failed: return "guard_failed";
  }
  return "unknown";
}

namespace detail {

std::shared_ptr<spdlog::logger> session_logger() { return component_logger("xsn.session"); }

bool debug_enabled(const spdlog::logger& log) noexcept { return log.should_log(spdlog::level::debug); }
bool warn_enabled(const spdlog::logger& log) noexcept { return log.should_log(spdlog::level::warn); }

std::string diagnostic_fields(const runtime_diagnostic& d) {
  std::string out = "session=" + field(d.session_id);
  const auto add = [&out](std::string_view key, std::string_view v) {
    if (v.empty()) return;
    out += ' ';
    out += key;
    out += '=';
    out += field(v);
  };
  add("event", d.event);
  add("state", d.state);
  add("reason", to_string(d.reason));
  add("message", d.message);
  return out;
}

void log_diagnostic(spdlog::logger& log, const runtime_diagnostic& d, std::string_view machine) {
  const auto lvl = d.kind == diagnostic_kind::event_ignored ? spdlog::level::debug : spdlog::level::warn;
  if (!log.should_log(lvl)) return;
  if (machine.empty()) log.log(lvl, "{} {}", to_string(d.kind), diagnostic_fields(d));
  else log.log(lvl, "{} machine={} {}", to_string(d.kind), field(machine), diagnostic_fields(d));
}

}  // namespace detail
// ---- a session's reports ----

void session::impl::report(const runtime_diagnostic& d) {
  if (opts_.on_diagnostic) {
    opts_.on_diagnostic(root_session(), d);
  } else {
    if (!log_) log_ = detail::session_logger();
    detail::log_diagnostic(*log_, d);
  }
  if (mode_.inspect) detail::inspect_diagnostic(opts_.inspect, inspection_base(), d);
}

void session::impl::report(diagnostic_kind kind, std::string_view event, state_index where, std::string_view message) {
  if (!opts_.on_diagnostic && !mode_.inspect) {  // nobody but the log: find the state only if it writes
    if (!log_) log_ = detail::session_logger();
    if (!detail::warn_enabled(*log_)) return;
  }
  runtime_diagnostic d;
  d.kind = kind;
  d.session_id = id_;
  d.event = event;
  if (where == acting_state) where = state_of(acting_);
  if (where != npos && where < c_.states.size()) d.state = c_.states[where].id;
  d.message = message;
  report(d);
}

bool session::impl::ignored_wanted() {
  if (opts_.on_diagnostic || mode_.inspect) return true;
  if (!log_) log_ = detail::session_logger();
  return detail::debug_enabled(*log_);
}

void session::impl::report_ignored(const event& ev, std::uint32_t name_id) {
  runtime_diagnostic d;
  d.kind = diagnostic_kind::event_ignored;
  d.session_id = id_;
  d.event = ev.name;
  d.reason = mode_.guard_failed                       ? ignore_reason::guard_failed
             : has_transition_for(ev, name_id) ? ignore_reason::guards_false
                                               : ignore_reason::no_transition;
  switch (d.reason) {
    case ignore_reason::guard_failed: d.message = "a guard of its transitions failed (reported before)"; break;
    case ignore_reason::guards_false: d.message = "the guards of its transitions in the active states were all false"; break;
    default: d.message = "no active state has a transition for it"; break;
  }
  report(d);
}

bool session::impl::has_transition_for(const event& ev, std::uint32_t name_id) const {
  bool found = false;
  const auto* ht = c_.hot_transitions.data();
  config_.for_each([&](state_index s) {
    const auto& hs = c_.hot_states[s];
    for (auto ti = hs.first_transition, last = ti + hs.transition_count; ti != last && !found; ++ti)
      found = ht[ti].event != hot_transition::eventless_marker &&
              (ht[ti].event == name_id || c_.matches_slow(c_.transitions[ti], ev.name, name_id));
  });
  return found;
}

namespace {

bool block_holds(const action_block& b, const action* a);

// True when `x` is `a` or holds it in the body of a branch or a loop.
bool action_holds(const action& x, const action* a) {
  if (&x == a) return true;
  if (const auto* i = std::get_if<if_action>(&x.op))
    for (const auto& br : i->branches)
      if (block_holds(br.body, a)) return true;
  const auto* f = std::get_if<foreach_action>(&x.op);
  return f && block_holds(f->body, a);
}

// True when block `b` holds action `a`, at any depth.
bool block_holds(const action_block& b, const action* a) {
  for (const auto& x : b)
    if (action_holds(x, a)) return true;
  return false;
}

// True when one of the onentry or onexit blocks of state `s` holds action `a`.
bool state_holds(const state_node& s, const action* a) {
  for (const auto* blocks : {&s.onentry, &s.onexit})
    for (const auto& b : *blocks)
      if (block_holds(b, a)) return true;
  return false;
}

}  // namespace

state_index session::impl::state_of(const action* a) const {
  if (!a) return npos;
  for (state_index si = 0; si < c_.states.size(); ++si)
    if (state_holds(c_.states[si], a)) return si;
  for (const auto& t : c_.transitions)
    if (t.source != npos && block_holds(t.body, a)) return t.source;
  for (const auto& inv : c_.invokes)
    if (block_holds(inv.finalize, a)) return inv.parent;
  return npos;
}

}  // namespace xsn::inline v0
