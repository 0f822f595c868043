#pragma once
/// \file The production clock: real (steady) time, timers on a Boost.Asio executor.
#include <xsn/core/clock.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <memory>

namespace xsn::inline v0 {

/**
 * A clock on a Boost.Asio executor: `now()` is `std::chrono::steady_clock`, every `schedule`
 * arms a `steady_timer` that the clock owns, and due callbacks run on the executor.
 *
 * Guarantees: a callback runs at most once, and never after `cancel` returned true for it or
 * after the clock was destroyed, even when its timer had already expired and the completion was
 * queued. The destructor cancels every pending timer; nothing is fire-and-forget.
 *
 * Threading: not thread-safe. Call every member from the executor (one thread at a time), as
 * with `session`. Lifetime: destroy the clock before its execution context (`io_context`).
 * An exception thrown by a callback propagates out of the executor's `run()`.
 */
class asio_clock final : public clock {
 public:
  /// The executor timers complete on.
  using executor_type = boost::asio::any_io_executor;

  /// Creates a clock whose timers complete on `ex`.
  explicit asio_clock(executor_type ex);
  /// Cancels all pending timers; their callbacks never run.
  ~asio_clock() override;
  asio_clock(const asio_clock&) = delete;
  asio_clock& operator=(const asio_clock&) = delete;
  // Not movable either: sessions keep a reference, and completions find timers by id.
  asio_clock(asio_clock&&) = delete;
  asio_clock& operator=(asio_clock&&) = delete;

  /// `std::chrono::steady_clock::now()`.
  time_point now() const override;
  /// Arms a timer for `due`; a due time in the past completes as soon as the executor runs it.
  timer_id schedule(time_point due, callback fn) override;
  /// Cancels a pending timer; false when it has already fired or been cancelled.
  bool cancel(timer_id id) override;

  /// Number of timers scheduled and neither fired nor cancelled.
  std::size_t pending() const noexcept;
  /// The executor timers complete on.
  const executor_type& get_executor() const noexcept { return executor_; }

 private:
  struct state;  // Timers by id; shared with the completions through a weak_ptr.
  executor_type executor_;
  std::shared_ptr<state> state_;
};

}  // namespace xsn::inline v0
