#pragma once
/// \file Runtime diagnostics: what went wrong (or was ignored) in a running session, as it happens.
///
/// A session reports each diagnostic to `session_options::on_diagnostic` when set, else logs it
/// through the `xsn.session` logger (`warn`; ignored events at `debug`), and in both cases puts it
/// on the inspection stream (`@xsn.diagnostic`). An orchestrator hands its machines' diagnostics
/// to `orchestrator_options::on_diagnostic` with the machine's id.
#include <cstdint>
#include <string_view>

namespace xsn::inline v0 {

/// What a `runtime_diagnostic` reports.
enum class diagnostic_kind : std::uint8_t {
  execution_error,      ///< `error.execution` was raised (XState: the machine failed).
  communication_error,  ///< `error.communication` was raised: a `<send>` could not be delivered.
  guard_error,          ///< A transition's `cond` (XState: guard) threw or failed to evaluate.
  /// An implementation is missing: an SCXML `<xsn:action name>` with no entry in
  /// `session_options::actions` (at start, once for all such names, and each time one runs), or
  /// the actions, guards, delays or actors an XState machine names and nobody bound.
  unbound_action,
  event_ignored,  ///< An external event took no transition (`reason` says why).
};

/// `"execution_error"`, `"communication_error"`, `"guard_error"`, `"unbound_action"` or
/// `"event_ignored"`.
std::string_view to_string(diagnostic_kind k) noexcept;

/// Why an external event took no transition (`diagnostic_kind::event_ignored`).
enum class ignore_reason : std::uint8_t {
  none,             ///< Not an ignored event.
  no_transition,    ///< No active state has a transition for the event.
  guards_false,     ///< Some do, but every guard of them was false.
  guard_failed,     ///< A guard of them failed (an error was reported first).
};

/// `""`, `"no_transition"`, `"guards_false"` or `"guard_failed"`.
std::string_view to_string(ignore_reason r) noexcept;

/// One diagnostic. The views are valid during the call only.
struct runtime_diagnostic {
  diagnostic_kind kind = diagnostic_kind::execution_error;  ///< What happened.
  std::string_view session_id;  ///< `_sessionid` of the session it happened in (maybe an invoked child).
  /// The error event raised (`error.execution`, `error.communication`), or the ignored event.
  std::string_view event;
  std::string_view state;    ///< Id of the state whose content or transition failed; empty when unknown.
  std::string_view message;  ///< Why, in words (e.g. the datamodel's error, the unbound names).
  ignore_reason reason = ignore_reason::none;  ///< `event_ignored`: why.
};

}  // namespace xsn::inline v0
