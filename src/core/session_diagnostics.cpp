// Runtime diagnostics: their names, and the `xsn.session` log of a session without a hook.
#include <xsn/runtime/diagnostics.hpp>

#include "logging_detail.hpp"
#include "session_ext.hpp"

namespace xsn {

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
}  // namespace xsn
