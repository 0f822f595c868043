#pragma once
// Virtual time for `xsn run` and `xsn trace`: one rule for both (README.md, "The `xsn` tool").
//
// Time starts at 0 and moves only by `advance(MS)`, which works as XState's SimulatedClock
// `increment`: time moves by MS first, then the delayed events that fell due fire one at a time in
// due order (ties: scheduling order), and the machine processes each before the next. A timer set
// or cancelled meanwhile makes it look again; a timer set meanwhile counts from the new time, so an
// `after` that re-enters its state fires once per `advance`, not once per delay.
//
// Every step is bounded: `settle` runs the session's handlers one at a time and stops once the run
// has taken `max_steps` macrosteps (counted by `count_macrostep`, which the session's
// `on_macrostep` calls), so a machine that loops through its external queue (a `<send delay="0s">`
// to itself) ends the command instead of running forever.
#include <xsn/core/clock.hpp>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace xsn::inline v0::cli {

/// XState's SimulatedClock (see the file comment).
class simulated_clock final : public clock {
 public:
  time_point now() const override { return now_; }
  timer_id schedule(time_point due, callback fn) override {
    changed_ = true;
    timers_.emplace(next_, entry{due, std::move(fn)});
    return next_++;
  }
  bool cancel(timer_id id) override {
    changed_ = true;
    return timers_.erase(id) > 0;
  }
  /// Moves time by `ms`, then fires the due timers in due order, calling `settle` after each; stops
  /// early when `settle` returns false.
  template <class Settle>
  void increment(std::chrono::milliseconds ms, Settle&& settle) {
    now_ += ms;
    for (bool again = true; again;) {
      again = false;
      changed_ = false;
      for (const auto& [due, id] : due_order()) {
        if (changed_) {
          again = true;
          break;
        }
        auto it = timers_.find(id);
        if (it == timers_.end() || due > now_) continue;
        auto fn = std::move(it->second.fn);
        timers_.erase(it);
        fn();
        if (!settle()) return;
      }
    }
  }

 private:
  struct entry {
    time_point due;
    callback fn;
  };
  std::vector<std::pair<time_point, timer_id>> due_order() const {
    std::vector<std::pair<time_point, timer_id>> order;
    order.reserve(timers_.size());
    for (const auto& [id, e] : timers_) order.emplace_back(e.due, id);
    std::sort(order.begin(), order.end());
    return order;
  }
  time_point now_{};
  timer_id next_ = 1;
  std::map<timer_id, entry> timers_;
  bool changed_ = false;
};

/// The most virtual time a run may let pass in all (2^40 ms, about 34 years): the clock counts
/// nanoseconds in 64 bits, which 292 years would overflow. `trace` steps and `test-script`
/// `after`s beyond it are refused.
inline constexpr std::int64_t max_virtual_ms = std::int64_t{1} << 40;

/// The default of `--max-steps`: macrosteps one `run` or `trace` may take in all.
inline constexpr std::uint64_t default_max_steps = 10'000;

/// An io_context and a simulated clock, run to quiescence under a macrostep budget.
class virtual_runner {
 public:
  /// `max_steps` 0: no budget.
  explicit virtual_runner(std::uint64_t max_steps) : max_steps_(max_steps) {}
  boost::asio::io_context& context() noexcept { return ioc_; }
  simulated_clock& clock() noexcept { return clk_; }

  /// Counts one macrostep; false once the budget is spent (the caller stops reporting).
  bool count_macrostep() noexcept {
    ++steps_;
    if (max_steps_ != 0 && steps_ > max_steps_) exhausted_ = true;
    return !exhausted_;
  }
  /// Runs ready handlers until none is left or the budget is spent; false in the second case.
  bool settle() {
    ioc_.restart();
    while (!exhausted_ && ioc_.poll_one() != 0) {
    }
    return !exhausted_;
  }
  /// `simulated_clock::increment` by `ms`, settling after each timer; false when the budget ran out.
  bool advance(std::int64_t ms) {
    clk_.increment(std::chrono::milliseconds(ms), [this] { return settle(); });
    return settle();
  }
  /// True once more than `max_steps` macrosteps were taken.
  bool exhausted() const noexcept { return exhausted_; }
  /// Says on `err` that the run stopped at the step budget (after `exhausted()`).
  void report_exhausted(std::ostream& err) const {
    err << "xsn: stopped after " << max_steps_ << " macrosteps (--max-steps): the machine keeps itself busy "
        << "(an event it sends itself, a timer due at once)\n";
  }
  /// Virtual time since the start, in milliseconds.
  std::int64_t now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clk_.now().time_since_epoch()).count();
  }

 private:
  boost::asio::io_context ioc_;
  simulated_clock clk_;
  std::uint64_t max_steps_;
  std::uint64_t steps_ = 0;
  bool exhausted_ = false;
};

/// Parses the value of `--max-steps`: a whole number (0: no limit); false when it is not one.
inline bool parse_max_steps(const std::string& text, std::uint64_t& out) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::stoull(text);
  return true;
}

}  // namespace xsn::inline v0::cli
