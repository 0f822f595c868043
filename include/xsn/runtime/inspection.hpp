#pragma once
/// \file Inspection: the stream of what sessions do, shaped like XState v5's inspection API.
#include <xsn/model/statechart.hpp>
#include <xsn/runtime/diagnostics.hpp>
#include <xsn/core/event.hpp>
#include <xsn/core/value.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

namespace xsn::inline v0 {

class session;

/// The kinds of inspection events, named after XState's `InspectionEvent['type']`.
enum class inspection_kind : std::uint8_t {
  actor,      ///< `@xstate.actor`: a session was created (started or restored).
  event,      ///< `@xstate.event`: a session is about to process an external event.
  snapshot,   ///< `@xstate.snapshot`: a macrostep ended (or the session stopped).
  microstep,  ///< `@xstate.microstep`: transitions were taken.
  action,     ///< `@xstate.action`: an executable content element is about to run.
  diagnostic, ///< `@xsn.diagnostic` (xsn's own): something went wrong or was ignored.
};

/// XState's `type` string of `k`, e.g. `@xstate.microstep` (`@xsn.diagnostic` for xsn's own).
std::string_view inspection_type_name(inspection_kind k) noexcept;

/**
 * One inspection event. Only the fields of its `kind` are set (XState's field names in
 * brackets); every view and pointer is valid only during the inspector's call.
 *
 * - `actor` [`@xstate.actor`]: `session_id`, `parent_id` (empty for a root session).
 * - `event` [`@xstate.event`]: `event`, `source_id` [`sourceRef`] (the sender's session id from
 *   `_event.origin`, else empty: sent from outside). A session's start reports `xstate.init`.
 * - `snapshot` [`@xstate.snapshot`]: `event` (the one that caused the macrostep), `snapshot`.
 * - `microstep` [`@xstate.microstep`]: `event` (the internal or external event being processed,
 *   `xstate.init` at start, the last one for eventless transitions), `snapshot`, `transitions`
 *   [`_transitions`] as indices into `chart->transitions` (at start: the initial transition).
 * - `action` [`@xstate.action`]: `action_type` and `action_params` [`action: {type, params}`].
 * - `diagnostic` [`@xsn.diagnostic`]: `diagnostic` (`diagnostic: {kind, event, state, reason,
 *   message}` in `to_json`, empty fields left out).
 */
struct inspection_event {
  inspection_kind kind = inspection_kind::actor;  ///< What happened.
  std::string_view root_id;                       ///< [`rootId`] session id of the root session.
  session* actor = nullptr;                       ///< [`actorRef`] the session concerned.
  std::string_view session_id;                    ///< [`actorRef.sessionId`] its id.
  const statechart* chart = nullptr;              ///< The chart it runs.
  std::string_view parent_id;                     ///< `actor`: the parent's session id, if any.
  std::string_view source_id;                     ///< `event`: the sender's session id, if known.
  const xsn::event* event = nullptr;              ///< `event`, `snapshot`, `microstep`.
  /// `snapshot`, `microstep`: `{status, value, context}` as in `session::snapshot()`.
  const value* snapshot = nullptr;
  std::span<const transition_index> transitions;  ///< `microstep`: the transitions taken.
  /// `action`: the element name (`raise`, `send`, `assign`, `log`, `script`, `if`, `foreach`,
  /// `cancel`) or, for a native action, its bound name.
  std::string_view action_type;
  const value* action_params = nullptr;           ///< `action`: its static attributes, an object.
  const runtime_diagnostic* diagnostic = nullptr;  ///< `diagnostic`: what was reported.

  /// XState's `type` string, e.g. `@xstate.snapshot`.
  std::string_view type() const noexcept { return inspection_type_name(kind); }
};

/**
 * The event as the JSON XState's inspection API would emit (`type`, `rootId`,
 * `actorRef: {sessionId}`, `sourceRef`, `event: {type, data}`, `snapshot`,
 * `_transitions: [{source, target, eventType}]` with state ids, `action: {type, params}`), e.g. to
 * forward to a Stately inspector.
 */
value to_json(const inspection_event& e);

/// Receives inspection events, synchronously, on the session's executor. It must not call the
/// session's members that change it (`send` is fine: the event is queued).
using inspector = std::function<void(const inspection_event&)>;

}  // namespace xsn::inline v0
