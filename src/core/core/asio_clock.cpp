#include <xsn/core/asio_clock.hpp>

#include <boost/asio/steady_timer.hpp>

#include <system_error>
#include <unordered_map>
#include <utility>

namespace xsn::inline v0 {

namespace {

/// A timer the clock owns, with the callback it will call.
struct pending_timer {
  boost::asio::steady_timer timer;
  clock::callback fn;
};

}  // namespace

/// Timers by id. The completions hold it weakly: when the clock is gone, or the id is no longer
/// in the map (cancelled, or already fired), a completion does nothing. This also covers a timer
/// that expired and queued its completion just before `cancel`, when `steady_timer::cancel` can
/// no longer abort it.
struct asio_clock::state {
  std::unordered_map<timer_id, std::unique_ptr<pending_timer>> timers;
  timer_id next_id = 1;
};

asio_clock::asio_clock(executor_type ex)
    : executor_(std::move(ex)), state_(std::make_shared<state>()) {}

asio_clock::~asio_clock() {
  // Destroying a steady_timer cancels its wait; the completion then finds no state.
  state_->timers.clear();
}

clock::time_point asio_clock::now() const {
  return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
}

clock::timer_id asio_clock::schedule(time_point due, callback fn) {
  const timer_id id = state_->next_id++;
  auto entry = std::make_unique<pending_timer>(
      pending_timer{boost::asio::steady_timer(executor_), std::move(fn)});
  entry->timer.expires_at(
      std::chrono::time_point_cast<std::chrono::steady_clock::duration>(due));
  entry->timer.async_wait(
      [weak = std::weak_ptr<state>(state_), id](const boost::system::error_code&) {
        // The error code is not consulted: the id map alone decides. An aborted wait always
        // belongs to an erased entry, and a successful one may have been cancelled since.
        callback due_fn;
        {
          auto st = weak.lock();
          if (!st) return;
          auto it = st->timers.find(id);
          if (it == st->timers.end()) return;
          due_fn = std::move(it->second->fn);
          st->timers.erase(it);  // Safe: this completion no longer belongs to the timer.
        }
        // Nothing of the clock is touched from here on: the callback may destroy it.
        if (due_fn) due_fn();
      });
  state_->timers.emplace(id, std::move(entry));
  return id;
}

bool asio_clock::cancel(timer_id id) {
  // Erasing destroys the timer, which aborts its wait.
  return state_->timers.erase(id) != 0;
}

std::size_t asio_clock::pending() const noexcept { return state_->timers.size(); }

}  // namespace xsn::inline v0
