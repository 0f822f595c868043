#pragma once
/// \file A running SCXML session: the W3C interpreter over a shared compiled chart.
#include <xsn/model/statechart.hpp>
#include <xsn/core/clock.hpp>
#include <xsn/runtime/datamodel.hpp>
#include <xsn/runtime/diagnostics.hpp>
#include <xsn/core/errors.hpp>
#include <xsn/core/event.hpp>
#include <xsn/runtime/inspection.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace xsn::inline v0 {

class session;

/// How deep the JSON of a snapshot given to `session::restore_json` may nest: room for datamodel
/// values (which nest at most 1000 deep) inside a few levels of invoked children. Deeper text
/// is refused by the JSON parser, so no recursion over it ever starts.
inline constexpr std::size_t max_snapshot_depth = 1100;

/// Where a session is in its life, XState's `snapshot.status` (plus `created`).
enum class session_status : std::uint8_t {
  created,  ///< Not started (nor restored) yet.
  active,   ///< Running: between `start` (or `restore`) and its end.
  done,     ///< Reached a top-level final state.
  error,    ///< XState: an action, guard or actor failed (see `session::error()`).
  stopped,  ///< Ended by `stop` (or, SCXML, cancelled by its parent).
};

/// `"created"`, `"active"`, `"done"`, `"error"` or `"stopped"`: the `status` of `session::snapshot()`.
std::string_view to_string(session_status s) noexcept;

/// A native C++ handler for `<xsn:action name="..."/>` (namespace `http://xsn.dev/scxml`).
using native_action_fn = std::function<void(session&)>;

/// How a session is set up. Every field has a safe default.
struct session_options {
  /// Makes the session's datamodel; default: the one named by the chart's `datamodel` attribute.
  datamodel_factory make_datamodel;
  /// Budgets for script evaluation (ECMAScript datamodel).
  script_limits limits;
  /// Capacity of the external event queue; `send` fails with `errc::queue_full` beyond it.
  std::size_t queue_capacity = 10'000;
  /// Capacity of the internal queue; a `raise` beyond it is dropped and `error.execution` logged.
  std::size_t internal_queue_capacity = 10'000;
  /// Microsteps one macrostep may take before it is ended with `error.execution`
  /// (a guard against endless eventless loops).
  std::uint32_t microstep_budget = 100'000;
  /// Native actions by name, bound once when the session is created.
  std::unordered_map<std::string, native_action_fn> actions;
  /// Receives `<log label expr>` output; default: discarded.
  std::function<void(std::string_view label, std::string_view message)> on_log;
  /**
   * Receives every runtime diagnostic (see `<xsn/runtime/diagnostics.hpp>`): each
   * `error.execution` and `error.communication` raised (XState: the failure of the machine), a
   * guard that failed, an unbound native action, an external event no transition took. `root`
   * is the top-level session of the tree (`d.session_id` names the one it happened in: invoked
   * children inherit the hook). Called synchronously on the executor, maybe inside a macrostep:
   * like an inspector, it must not call the session's members that change it (`send` is fine).
   * Unset: the diagnostic is logged through the `xsn.session` logger, at `warn` (ignored events
   * at `debug`), silent unless logging is configured (`<xsn/core/logging.hpp>`).
   */
  std::function<void(session& root, const runtime_diagnostic& d)> on_diagnostic;
  /// Called after every macrostep (including the initial one) with the session stable.
  std::function<void(session&)> on_macrostep;
  /// Called once when the session has ended (top-level final state or `stop`), with donedata.
  std::function<void(session&, const value& donedata)> on_done;
  /// Delivers events to targets outside the session's own tree, e.g. another machine of an
  /// orchestrator (`xsn:ID`) or a bus topic: SCXML `<send>` to a target that is not an SCXML
  /// processor address (`#_...`), and XState `sendTo` to an id that is neither a child's id nor a
  /// systemId of the actor tree (as target `xsn:ID`). `root` is the top-level session of the
  /// sender's tree, the one the embedding created (invoked and spawned children inherit `route`
  /// and pass their root ancestor), so the embedding knows which of its machines sent.
  /// Returns false when the target cannot be reached: an SCXML session raises
  /// `error.communication`, an XState machine fails (status `error`). Unset: SCXML such targets
  /// are an `error.execution`; XState `sendTo` an unknown id fails the machine.
  std::function<bool(session& root, const std::string& target, event ev)> route;
  /// `_sessionid`; generated when empty. A session given this (or an id of its own, see the
  /// `session` constructors) keeps it when it restores a snapshot of another id.
  std::string session_id;
  /// Receives the inspection stream (`@xstate.actor`, `event`, `snapshot`, `microstep`,
  /// `action`, and `@xsn.diagnostic`); unset: nothing is built. Invoked children inherit it.
  inspector inspect;
};

/**
 * One running instance of a statechart, following the W3C SCXML algorithm (Appendix D).
 *
 * A session runs on the executor it is given and never starts threads. All member functions
 * must be called from that executor (one thread at a time): the session is not thread-safe.
 * Delayed events go through the `clock`; invoked child sessions share executor and clock.
 */
class session {
 public:
  /// Creates a session; nothing runs until `start`.
  session(std::shared_ptr<const statechart> chart, boost::asio::any_io_executor ex, xsn::clock& clk,
          session_options opts = {});
  /// Creates a session sharing `options` with other sessions (one copy for many machines).
  session(std::shared_ptr<const statechart> chart, boost::asio::any_io_executor ex, xsn::clock& clk,
          std::shared_ptr<const session_options> options);
  /// Creates a session sharing `options`, with `_sessionid` `session_id` (e.g. the embedding's
  /// name of the machine, so that inspection events name it). The given id wins over
  /// `options->session_id`, and over a snapshot's: `restore` keeps it (an XState machine's pending
  /// timers stay its own). Empty: as the other constructors
  /// (`options->session_id`, else a generated id).
  session(std::shared_ptr<const statechart> chart, boost::asio::any_io_executor ex, xsn::clock& clk,
          std::shared_ptr<const session_options> options, std::string session_id);
  /// Cancels pending timers and child sessions.
  ~session();
  /// Attaches a pointer of the embedding's (e.g. its record of this machine); not owned.
  void set_user_data(void* p) noexcept;
  /// What `set_user_data` attached, or null.
  void* user_data() const noexcept;
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /**
   * Enters the initial configuration and runs the first macrostep, synchronously. Fails when the
   * session ended in status `error` while starting (XState; `error()` says why, and the
   * diagnostic hook or log has it too): with `errc::not_bound` when the machine names actions,
   * guards, delays or actors that were not bound (all of them are listed), else
   * `errc::start_failed`. An SCXML session's errors are `error.execution` events: it starts.
   */
  std::error_code start();
  /// Before `start`: the machine's input. SCXML: the top-level `<data>` whose ids are keys of
  /// `input` (an object) take those values instead of their `expr`, as `<invoke>` params do;
  /// other keys are ignored. XState: the machine's `input`, in `xstate.init`'s event (`input`)
  /// for the initial actions and guards, as `createActor(machine, {input})` gives it.
  void set_input(value input);
  /// Queues an external event; it is processed on the executor. Fails with `errc::queue_full`
  /// when the external queue is at capacity and `errc::not_running` after the session ended.
  std::error_code send(event ev);
  /// Queues an external event and runs macrosteps synchronously until the queue is empty.
  /// Fails with `errc::not_on_executor` when called from inside a macrostep.
  std::error_code process(const event& ev);
  /// Runs queued external events now (what the posted handler does).
  void drain();

  /// Completion signature of `async_send`: the error, or the active atomic states (document
  /// order) right after the macrostep the event caused.
  using send_signature = void(std::error_code, std::vector<std::string>);
  /**
   * Queues `ev` and completes when the macrostep it caused has finished, with the active atomic
   * states then. Fails with `errc::queue_full`, `errc::not_running` (not started, or ended
   * before the event was processed) or `std::errc::operation_canceled` (the session was
   * destroyed first, or the event was dropped because it carried the `invokeid` of a child being
   * cancelled). The event is queued from the session's executor (the call is
   * posted there, so with a strand it may be made from any thread); the handler runs on its
   * associated executor, by default the session's, never inside this call. Works with callbacks,
   * `use_future` (the error comes back as a value, not thrown) and `use_awaitable`.
   */
  template <boost::asio::completion_token_for<send_signature> Token>
  auto async_send(event ev, Token&& token) {
    return boost::asio::async_initiate<Token, send_signature>(
        [this](auto h, event e) { do_async_send(std::move(e), std::move(h)); }, token, std::move(ev));
  }
  /// Cancels the session: exits all states, as when the parent cancels an invocation. An XState
  /// chart runs no exit actions and keeps its configuration, as XState's `actor.stop()` does.
  void stop();

  /// True between `start` and reaching a top-level final state or `stop`.
  bool running() const noexcept;
  /// Where the session is in its life; `to_string` of it is the snapshot's `status`.
  session_status status() const noexcept;
  /// XState `snapshot.error`: why the session failed, as a JSON string (e.g. `sendParent in
  /// state 'm.idle' (entry): machine 'm' has no parent`), once its status is `error`; null
  /// otherwise. The snapshot carries it as `error`, so a restored failed session keeps it.
  value error() const;
  /// The chart this session runs.
  const statechart& chart() const noexcept;
  /// `_sessionid`.
  const std::string& id() const noexcept;
  /// True when state `s` is in the configuration.
  bool is_active(state_index s) const noexcept;
  /// All active states in document order.
  std::vector<state_index> configuration() const;
  /// Ids of the active atomic (including final) states, in document order.
  std::vector<std::string> active_atomic_states() const;
  /// Transitions taken since the session was created (not carried by snapshots: a restored
  /// session counts from 0). Each microstep adds the transitions it took (parallel regions: one
  /// each); the initial entry adds none. Read it around `process` to tell whether an event
  /// caused any transition.
  std::uint64_t transitions_taken() const noexcept;
  /// External events waiting to be processed.
  std::size_t queued() const noexcept;
  /// The datamodel (for native actions and inspection).
  xsn::datamodel& datamodel() noexcept;
  /// XState `snapshot.tags`: the `tags` of the active states, each once, in document order.
  std::vector<std::string> tags() const;
  /// XState `snapshot.hasTag(tag)`: some active state has `tag`.
  bool has_tag(std::string_view tag) const;
  /// XState `snapshot.getMeta()`: `{stateId: meta}` for the active states with a (non-null) `meta`.
  value meta() const;
  /// XState `snapshot.output`: the machine's `output` once it reached a top-level final state
  /// (status `done`); null before, after `stop`, on error, or when the machine has no `output`.
  value output() const;

  /**
   * The session as JSON, in XState's persisted-snapshot shape (`status`, `error` once failed, `value`, `context`,
   * `historyValue` as `{historyId: [{id}]}`, `children` as `{invokeid: {snapshot, src}}` with each
   * child's own snapshot) plus what SCXML needs to carry on exactly: the full `configuration`,
   * pending delayed events with their remaining time, queued external events, late-binding state
   * and the session id. Children invoked from an expression are not restorable. Take it between
   * macrosteps (not from inside an action).
   */
  value snapshot();
  /// Resumes from `snapshot()` of a session of the same chart, instead of `start`: no entry
  /// actions run; pending delayed events are rescheduled on this session's clock at their due
  /// time (overdue ones fire at once), or after their remaining time when the due time is not
  /// on this clock's time base. Fails with `errc::bad_snapshot`, changing nothing, when the
  /// snapshot (or a child's) is malformed or does not fit; `on_log` (label `error`) says why.
  /// The session takes the snapshot's `sessionid` unless it was given an id (in
  /// `session_options` or the constructor), which it keeps.
  std::error_code restore(const value& snapshot);
  /// `restore` from JSON text; text that is not JSON, or nests deeper than
  /// `max_snapshot_depth`, fails with `errc::bad_snapshot` too.
  std::error_code restore_json(std::string_view text);

  struct impl;  ///< Implementation, in src/core.

 private:
  void do_async_send(event ev, boost::asio::any_completion_handler<send_signature> h);
  std::unique_ptr<impl> impl_;
};

}  // namespace xsn::inline v0
