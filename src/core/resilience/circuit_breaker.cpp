#include <xsn/resilience/circuit_breaker.hpp>
#include <xsn/resilience/simple_circuit_breaker.hpp>

#include "core/logging_detail.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace xsn::inline v0 {
namespace detail {

/// The listeners of one breaker; shared with the subscriptions, which may outlive the breaker.
/// Also the breaker's name and logger, which the header does not show.
struct breaker_listeners {
  breaker_listeners() : name("breaker-" + std::to_string(next_number())), log(component_logger("xsn.breaker")) {}

  static std::uint64_t next_number() noexcept {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  std::string name;                     // set before the breaker is shared
  std::shared_ptr<spdlog::logger> log;  // `xsn.breaker`

  struct entry {
    std::uint64_t id;
    breaker_listener fn;
    bool active = true;  // guarded by mutex
  };
  // Recursive: held while a listener runs, and a listener may subscribe or unsubscribe.
  // Unsubscribing from another thread waits for the running listener to return.
  std::recursive_mutex mutex;
  std::vector<std::shared_ptr<entry>> entries;
  std::uint64_t next_id = 1;

  void remove(std::uint64_t id) noexcept {
    std::lock_guard lk(mutex);
    auto it = std::find_if(entries.begin(), entries.end(), [id](const auto& e) { return e->id == id; });
    if (it == entries.end()) return;
    (*it)->active = false;
    entries.erase(it);
  }

  // noexcept: a throwing listener terminates (documented).
  void notify(breaker_state from, breaker_state to, clock::time_point at) noexcept {
    std::lock_guard lk(mutex);
    if (entries.empty()) return;
    const auto snapshot = entries;  // listeners may (un)subscribe while we iterate
    for (const auto& e : snapshot) {
      if (e->active) e->fn(from, to, at);
    }
  }
};

}  // namespace detail

// ---- breaker_subscription ----

breaker_subscription::breaker_subscription(breaker_subscription&& other) noexcept
    : registry_(std::move(other.registry_)), id_(std::exchange(other.id_, 0)) {}

breaker_subscription& breaker_subscription::operator=(breaker_subscription&& other) noexcept {
  if (this != &other) {
    reset();
    registry_ = std::move(other.registry_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

breaker_subscription::~breaker_subscription() { reset(); }

void breaker_subscription::reset() noexcept {
  if (id_ == 0) return;
  if (auto registry = registry_.lock()) registry->remove(id_);
  registry_.reset();
  id_ = 0;
}

// ---- circuit_breaker ----

circuit_breaker::circuit_breaker(xsn::clock& clk, bool measures_calls)
    : clock_(clk),
      measures_calls_(measures_calls),
      last_transition_(clk.now()),
      listeners_(std::make_shared<detail::breaker_listeners>()) {}

circuit_breaker::~circuit_breaker() = default;

const std::string& circuit_breaker::name() const noexcept { return listeners_->name; }

void circuit_breaker::set_name(std::string name) {
  if (!name.empty()) listeners_->name = std::move(name);
}

breaker_subscription circuit_breaker::on_state_change(breaker_listener fn) {
  if (!fn) return {};
  std::lock_guard lk(listeners_->mutex);
  const auto id = listeners_->next_id++;
  listeners_->entries.push_back(
      std::make_shared<detail::breaker_listeners::entry>(detail::breaker_listeners::entry{id, std::move(fn)}));
  return breaker_subscription(listeners_, id);
}

void circuit_breaker::transition(lock_type& lk, breaker_state to) {
  (void)lk;
  const auto gate = gate_.load(std::memory_order_relaxed);
  const auto from = state_of(gate);
  if (from == to) return;
  const auto now = clock_.now();
  queued_.push_back({from, to, now});  // may throw: before anything changed
  last_transition_ = now;
  const auto generation = (gate & ~(generation_one - 1)) + generation_one;
  gate_.store(generation | (gate & track_bit) | static_cast<std::uint64_t>(to), std::memory_order_release);
  events_waiting_.store(true, std::memory_order_relaxed);
}

void circuit_breaker::restore(lock_type& lk, breaker_state s, clock::time_point last_transition) {
  (void)lk;
  const auto gate = gate_.load(std::memory_order_relaxed);
  const auto generation = (gate & ~(generation_one - 1)) + generation_one;
  last_transition_ = last_transition;
  gate_.store(generation | (gate & track_bit) | static_cast<std::uint64_t>(s), std::memory_order_release);
}

void circuit_breaker::track_successes(lock_type& lk, bool on) {
  (void)lk;
  const auto gate = gate_.load(std::memory_order_relaxed);
  const auto updated = on ? (gate | track_bit) : (gate & ~track_bit);
  if (updated != gate) gate_.store(updated, std::memory_order_release);
}

circuit_breaker::ticket circuit_breaker::current_ticket(const lock_type&) const noexcept {
  return gate_.load(std::memory_order_relaxed) & ~track_bit;
}

bool circuit_breaker::is_current(const lock_type&, ticket t) const noexcept {
  if (t == untracked) return true;
  const auto gate = gate_.load(std::memory_order_relaxed);
  if (state_of(t) == breaker_state::closed) return state_of(gate) == breaker_state::closed;
  return (t & ~track_bit) == (gate & ~track_bit);
}

breaker_state circuit_breaker::state(const lock_type&) const noexcept {
  return state_of(gate_.load(std::memory_order_relaxed));
}

clock::time_point circuit_breaker::last_transition(const lock_type&) const noexcept { return last_transition_; }

bool circuit_breaker::acquire_slow(ticket& t) {
  t = gate_.load(std::memory_order_acquire) & ~track_bit;
  const bool ok = do_try_acquire(t);
  deliver_events();
  if (!ok && listeners_->log->should_log(spdlog::level::debug)) {
    listeners_->log->debug("rejected breaker={} state={}", detail::field(listeners_->name), to_string(state()));
  }
  return ok;
}

void circuit_breaker::success_slow(ticket t, clock::duration elapsed) {
  do_record_success(t, elapsed);
  deliver_events();
}

void circuit_breaker::failure_slow(ticket t, clock::duration elapsed) {
  if (listeners_->log->should_log(spdlog::level::debug)) {
    listeners_->log->debug("failure breaker={} state={} elapsed_ns={}", detail::field(listeners_->name),
                           to_string(state()), elapsed.count());
  }
  do_record_failure(t, elapsed);
  deliver_events();
}

void circuit_breaker::release_slow(ticket t) {
  do_release(t);
  deliver_events();
}

void circuit_breaker::throw_circuit_open() { throw std::system_error(make_error_code(errc::circuit_open)); }

void circuit_breaker::log_transition(breaker_state from, breaker_state to, clock::time_point at) const {
  // Opening means the dependency is failing: a warning; the way back is information.
  const auto lvl = to == breaker_state::open ? spdlog::level::warn : spdlog::level::info;
  auto& log = *listeners_->log;
  if (!log.should_log(lvl)) return;
  log.log(lvl, "transition breaker={} from={} to={} at_ns={}", detail::field(listeners_->name),
          to_string(from), to_string(to), at.time_since_epoch().count());
}

void circuit_breaker::deliver_events() {
  // Our own queued events are visible to us; another thread's are delivered by that thread.
  if (!events_waiting_.load(std::memory_order_relaxed)) return;
  lock_type lk(mutex_);
  if (delivering_) return;  // the delivering thread will pick ours up, in order
  delivering_ = true;
  while (!queued_.empty()) {
    const auto ev = queued_.front();
    queued_.pop_front();
    lk.unlock();
    log_transition(ev.from, ev.to, ev.at);
    listeners_->notify(ev.from, ev.to, ev.at);
    lk.lock();
  }
  delivering_ = false;
  events_waiting_.store(false, std::memory_order_relaxed);
}

// ---- simple_circuit_breaker ----

namespace {
simple_breaker_options checked(simple_breaker_options opts) {
  if (opts.failure_threshold == 0)
    throw std::invalid_argument("simple_circuit_breaker: failure_threshold must be at least 1");
  if (opts.half_open_trial_calls == 0)
    throw std::invalid_argument("simple_circuit_breaker: half_open_trial_calls must be at least 1");
  if (opts.open_duration < clock::duration::zero())
    throw std::invalid_argument("simple_circuit_breaker: open_duration must not be negative");
  return opts;
}
}  // namespace

simple_circuit_breaker::simple_circuit_breaker(xsn::clock& clk, simple_breaker_options opts)
    : circuit_breaker(clk), opts_(checked(std::move(opts))) {
  set_name(opts_.name);
}

simple_circuit_breaker::~simple_circuit_breaker() = default;

void simple_circuit_breaker::open(lock_type& lk, clock::time_point now) {
  // open_until_ first: a lock-free reader that sees the state open sees it too (release/acquire
  // through the gate). Saturate instead of overflowing for huge durations.
  const auto max = clock::time_point::max();
  const auto until = (max - now < opts_.open_duration) ? max : now + opts_.open_duration;
  open_until_.store(until.time_since_epoch().count(), std::memory_order_relaxed);
  transition(lk, breaker_state::open);
  track_successes(lk, false);
  trials_admitted_ = 0;
  trials_succeeded_ = 0;
}

bool simple_circuit_breaker::do_try_acquire(ticket& t) {
  switch (ticket_state(t)) {
    case breaker_state::closed: return true;  // closed with failures counted: still admitted
    case breaker_state::open: {
      // The common rejection: no lock.
      const auto now = clock().now().time_since_epoch().count();
      if (now < open_until_.load(std::memory_order_relaxed)) return false;
      break;
    }
    case breaker_state::half_open: break;
  }
  auto lk = lock();
  switch (state(lk)) {
    case breaker_state::closed: t = current_ticket(lk); return true;
    case breaker_state::open:
      if (clock().now().time_since_epoch().count() < open_until_.load(std::memory_order_relaxed)) {
        return false;
      }
      transition(lk, breaker_state::half_open);
      trials_admitted_ = 0;
      trials_succeeded_ = 0;
      [[fallthrough]];
    case breaker_state::half_open:
      if (trials_admitted_ >= opts_.half_open_trial_calls) return false;
      ++trials_admitted_;
      t = current_ticket(lk);
      return true;
  }
  return false;
}

void simple_circuit_breaker::do_record_success(ticket t, clock::duration) {
  auto lk = lock();
  if (!is_current(lk, t)) return;
  switch (state(lk)) {
    case breaker_state::closed:
      failures_ = 0;
      track_successes(lk, false);
      break;
    case breaker_state::open: break;  // an outcome recorded by hand while open: nothing to learn
    case breaker_state::half_open:
      if (++trials_succeeded_ >= opts_.half_open_trial_calls) {
        transition(lk, breaker_state::closed);
        failures_ = 0;
        track_successes(lk, false);
      }
      break;
  }
}

void simple_circuit_breaker::do_record_failure(ticket t, clock::duration) {
  auto lk = lock();
  if (!is_current(lk, t)) return;
  switch (state(lk)) {
    case breaker_state::closed:
      if (++failures_ >= opts_.failure_threshold) {
        open(lk, clock().now());
      } else {
        track_successes(lk, true);
      }
      break;
    case breaker_state::open: break;
    case breaker_state::half_open:
      ++failures_;
      open(lk, clock().now());
      break;
  }
}

void simple_circuit_breaker::do_release(ticket t) {
  auto lk = lock();
  if (!is_current(lk, t)) return;
  if (state(lk) == breaker_state::half_open && trials_admitted_ > trials_succeeded_) --trials_admitted_;
}

breaker_health simple_circuit_breaker::do_health() const {
  auto lk = lock();
  return {state(lk), failures_, last_transition(lk)};
}

}  // namespace xsn::inline v0
