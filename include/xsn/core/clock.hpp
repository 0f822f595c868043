#pragma once
/// \file Time for delayed events: a clock interface, a manual clock for tests, an Asio clock.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>

namespace xsn::inline v0 {

/// Every delay in xsn goes through a clock, so tests can drive time by hand.
class clock {
 public:
  using duration = std::chrono::nanoseconds;          ///< Resolution of all clocks.
  using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;
  using timer_id = std::uint64_t;                     ///< Handle of a scheduled callback.
  using callback = std::function<void()>;             ///< Runs when a timer is due.

  virtual ~clock();
  /// The current time.
  virtual time_point now() const = 0;
  /// Calls `fn` once at `due` (or as soon as possible after it); returns a handle for `cancel`.
  virtual timer_id schedule(time_point due, callback fn) = 0;
  /// Cancels a timer; false when it had already fired or been cancelled.
  virtual bool cancel(timer_id id) = 0;
};

/// `t + d`, or the end of time (`clock::time_point::max()`) where the sum would overflow: a TTL or
/// an open period so long that it means "never". A negative `d` is added as it is.
[[nodiscard]] constexpr clock::time_point saturating_add(clock::time_point t, clock::duration d) noexcept {
  if (d > clock::duration::zero() && t > clock::time_point::max() - d) return clock::time_point::max();
  return t + d;
}

/**
 * A clock that moves only when told. Due timers fire in order of due time, then of scheduling,
 * on the thread that advances the clock. Not thread-safe: drive it from one thread.
 */
class manual_clock final : public clock {
 public:
  time_point now() const override { return now_; }
  timer_id schedule(time_point due, callback fn) override;
  bool cancel(timer_id id) override;
  /// The due time of the earliest pending timer, if any.
  std::optional<time_point> next_due() const;
  /// Fires the earliest timer if it is due at or before `limit`, moving time to its due time.
  /// Returns false when none is due by then.
  bool fire_next(time_point limit);
  /// Moves time to `t`, firing every timer due by then in order.
  void advance_to(time_point t);
  /// Moves time forward by `d`, firing every timer due by then in order.
  void advance(duration d) { advance_to(now_ + d); }
  /// Number of pending timers.
  std::size_t pending() const noexcept { return timers_.size(); }

 private:
  time_point now_{};
  timer_id next_id_ = 1;
  std::map<std::pair<time_point, timer_id>, callback> timers_;
  std::map<timer_id, time_point> due_of_;
};

}  // namespace xsn::inline v0
