#pragma once
// Private to xsn_core: what a session needs only when inspected or awaited through `async_send`
// (allocated on first use, so a plain session pays nothing for it). The free functions here keep
// that code out of session.cpp, which only calls them at its hook points.
#include <xsn/runtime/diagnostics.hpp>
#include <xsn/core/event.hpp>
#include <xsn/runtime/inspection.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace xsn::inline v0 {
struct action;
}
namespace spdlog {
class logger;
}

namespace xsn::inline v0::detail {

/// The handler `session::async_send` waits with.
using macrostep_handler = boost::asio::any_completion_handler<void(std::error_code, std::vector<std::string>)>;

/**
 * `async_send` callers waiting for the macrostep of their event. An event is known by its
 * sequence number among the external events ever taken off the queue: an event `n` places
 * behind the front is number `popped + n + 1`. Completions are posted, never run inline.
 */
class macrostep_waiters {
 public:
  /// Waits for the event at the back of the queue, which holds `queued` events (itself included).
  void add(std::size_t queued, macrostep_handler h);
  /// One external event was taken off the queue to be processed.
  void popped() noexcept { ++popped_; }
  /// True when nobody waits.
  bool empty() const noexcept { return waiting_.empty(); }
  /// Completes the waiters whose event has been processed with `states()`.
  void complete_processed(const boost::asio::any_io_executor& ex, const std::function<std::vector<std::string>()>& states);
  /// The queued events will never be processed: fails their waiters with `ec`.
  void fail_queued(const boost::asio::any_io_executor& ex, std::error_code ec);
  /// Fails every waiter with `ec` (the session is going away).
  void fail_all(const boost::asio::any_io_executor& ex, std::error_code ec);
  /// The queued events at `positions` (0 = front, ascending) were removed from the queue.
  void removed(const boost::asio::any_io_executor& ex, const std::vector<std::size_t>& positions);

 private:
  struct waiter {
    std::uint64_t seq;
    macrostep_handler handler;
  };
  std::uint64_t popped_ = 0;
  std::deque<waiter> waiting_;  // ascending seq
};

/// Completes `h` with `ec` and `states` through `ex` (never inline).
void post_completion(const boost::asio::any_io_executor& ex, macrostep_handler h, std::error_code ec,
                     std::vector<std::string> states = {});

/// The rarely used part of a session: `async_send` waiters and inspection scratch.
struct session_ext {
  macrostep_waiters waiters;
  xsn::event current;  ///< Inspection: the event of the current microstep (`xstate.init` at start).
};

/// `@xstate.actor` for the session described by `base`.
void inspect_actor(const inspector& fn, inspection_event base, std::string_view parent_id);
/// `@xstate.event`: `ev` is about to be processed.
void inspect_event(const inspector& fn, inspection_event base, const xsn::event& ev);
/// `@xstate.snapshot` after the macrostep of `ev`.
void inspect_snapshot(const inspector& fn, inspection_event base, const xsn::event& ev, const value& state);
/// `@xstate.microstep`: `transitions` were taken on `ev` (null: the initial transition).
void inspect_microstep(const inspector& fn, inspection_event base, const xsn::event* ev, const value& state,
                       std::span<const transition_index> transitions);
/// `@xstate.action`: `a` is about to run.
void inspect_action(const inspector& fn, inspection_event base, const action& a);
/// `@xsn.diagnostic`: `d` was reported.
void inspect_diagnostic(const inspector& fn, inspection_event base, const runtime_diagnostic& d);

// Diagnostics through spdlog (session_diagnostics.cpp), so that session.cpp does without it.
/// The `xsn.session` logger now registered (silent when none is).
std::shared_ptr<spdlog::logger> session_logger();
/// True when `log` writes `debug` records (what an ignored event is logged at).
bool debug_enabled(const spdlog::logger& log) noexcept;
/// True when `log` writes `warn` records (what other diagnostics are logged at).
bool warn_enabled(const spdlog::logger& log) noexcept;
/// Writes `d` to `log`: at `warn`, an ignored event at `debug`; formatted only when enabled.
/// `machine`, when not empty, is written as a `machine=` field after the kind (the orchestrator's).
void log_diagnostic(spdlog::logger& log, const runtime_diagnostic& d, std::string_view machine = {});
/// `d`'s `key=value` fields (`session`, `event`, `state`, `reason`, `message`; empty ones left
/// out), for a record whose first word is `to_string(d.kind)`.
std::string diagnostic_fields(const runtime_diagnostic& d);

}  // namespace xsn::inline v0::detail
