#pragma once
/// \file What `channel_event_bus` and `xsn::advanced::numa_event_bus` share: the routing table
/// (addresses, `prefix*` patterns, a per-thread route cache), fan-out under the overflow
/// policies, the `$reply` inbox and pending requests, health and shutdown. Each bus brings its
/// subscriptions' queues and how consumers and full publishers wait.
#include <xsn/bus/event_bus.hpp>
#include <xsn/bus/detail/mpmc_ring.hpp>
#include <xsn/core/clock.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace xsn::inline v0::detail {

/// Why a subscription stopped.
enum class close_reason : int { open = 0, unsubscribed, shutdown };

/// What offering a message to one subscription did.
enum class offer_result { queued, full, closed };

/// One CPU pause hint (spin-wait loops).
inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// The asymmetric fence pair readers and writers of `striped_shared_mutex` use.
///
/// With Linux's `membarrier` (private expedited, registered once per process), a reader's side is
/// a compiler barrier and the writer's a system call that runs a full fence on every CPU running
/// one of the process's threads. Without it (an old kernel, a seccomp filter), both are
/// `std::atomic_thread_fence(seq_cst)`. Under ThreadSanitizer, always the fences.
struct asymmetric_fence {
  /// True when `heavy()` is a `membarrier` (decided on first use, once).
  static bool membarrier_available() noexcept {
    static const bool available = register_membarrier();
    return available;
  }
  /// Registers the process for private expedited `membarrier`s; false when it cannot.
  static bool register_membarrier() noexcept;
  /// The reader's side, after its store and before its load.
  static void light() noexcept {
    if (membarrier_available()) std::atomic_signal_fence(std::memory_order_seq_cst);
    else std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  /// The writer's side, after its store and before its loads.
  static void heavy() noexcept;
};

inline constexpr std::size_t reader_slots = 64;

/// A thread's reader slot: an index no other live thread has, below `reader_slots`, or
/// `reader_slots` when all are taken (the thread then shares a counted slot). Taken on the
/// thread's first read lock, given back when it exits.
struct thread_reader_slot {
  thread_reader_slot() noexcept;
  ~thread_reader_slot();
  thread_reader_slot(const thread_reader_slot&) = delete;
  thread_reader_slot& operator=(const thread_reader_slot&) = delete;
  std::size_t index;
};
inline std::size_t this_thread_reader_slot() noexcept {
  thread_local const thread_reader_slot mine;
  return mine.index;
}

/**
 * A reader-writer lock for state that is read on every publish and written rarely (subscribe,
 * unsubscribe, shutdown). Each thread has its own padded reader counter, which only it writes: a
 * reader enters and leaves with plain stores and an asymmetric fence (`asymmetric_fence`: no
 * locked instruction where Linux has `membarrier`), and a writer raises a flag, runs the heavy
 * fence and waits for every counter to be zero. Threads beyond `reader_slots` share one counter
 * with `fetch_add`. `pthread_rwlock` would make every publisher do two atomic operations on one
 * shared line; session 12's striped counters still made it do two locked ones.
 */
class striped_shared_mutex {
 public:
  /// Enters as a reader; returns the slot to pass to `unlock_shared`.
  std::size_t lock_shared() noexcept {
    const std::size_t i = this_thread_reader_slot();
    auto& r = slots_[i].readers;
    for (;;) {
      if (i < reader_slots) r.store(r.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      else r.fetch_add(1, std::memory_order_seq_cst);
      asymmetric_fence::light();  // the count is visible before the flag is read (Dekker with lock())
      if (!writer_.load(std::memory_order_acquire)) return i;
      leave(i);
      std::lock_guard wait_for_writer(writer_mutex_);
    }
  }
  /// Leaves as a reader of `slot`.
  void unlock_shared(std::size_t slot) noexcept { leave(slot); }
  /// Enters as the writer, once the readers in flight have left.
  void lock() {
    writer_mutex_.lock();
    writer_.store(true, std::memory_order_relaxed);
    asymmetric_fence::heavy();  // the flag is visible before the counts are read
    for (auto& s : slots_) {
      backoff b;
      while (s.readers.load(std::memory_order_acquire) != 0) b.snooze();
    }
  }
  /// Leaves as the writer.
  void unlock() {
    writer_.store(false, std::memory_order_release);
    writer_mutex_.unlock();
  }

 private:
  void leave(std::size_t i) noexcept {
    auto& r = slots_[i].readers;
    if (i < reader_slots) r.store(r.load(std::memory_order_relaxed) - 1, std::memory_order_release);
    else r.fetch_sub(1, std::memory_order_release);
  }
  struct alignas(128) slot {
    std::atomic<std::size_t> readers{0};
  };
  slot slots_[reader_slots + 1];  // the last one shared
  std::atomic<bool> writer_{false};
  std::mutex writer_mutex_;
};

/// RAII reader of a `striped_shared_mutex`.
class shared_guard {
 public:
  /// Enters `m` as a reader.
  explicit shared_guard(striped_shared_mutex& m) noexcept : m_(m), slot_(m.lock_shared()) {}
  ~shared_guard() { m_.unlock_shared(slot_); }
  shared_guard(const shared_guard&) = delete;
  shared_guard& operator=(const shared_guard&) = delete;

 private:
  striped_shared_mutex& m_;
  std::size_t slot_;  // the reader slot
};

/// FNV-1a, inline: addresses are short, and `std::hash`'s out-of-line murmur costs more than the
/// rest of the lookup.
struct address_hash {
  using is_transparent = void;
  /// The hash of `s`.
  std::size_t operator()(std::string_view s) const noexcept {
    std::uint64_t h = 14695981039346656037ull;
    for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

/**
 * The shared core of an in-process bus, as a CRTP base of the bus's core (which must also derive
 * from `std::enable_shared_from_this<Derived>`, be owned by a `shared_ptr`, and outlive nothing
 * it hands out: pending operations hold weak references).
 *
 * `Sub`, a subscription's state, has `id`, `address`, `opts`, `ring` (with `size()` and
 * `pushed()`), atomics `dropped`, `rejected` and `space_waiters`, `closed_error(bool publisher)`
 * and `close(close_reason)`. `Derived` has
 * - `offer_result offer(Sub&, bus_message&)`: non-blocking delivery under the subscription's
 *   policy, moving from the message only when queued (counts `fail` refusals and drops itself);
 * - hooks for its records: `on_full(Sub&, const bus_message&, bool waiting)` (a `wait`
 *   subscription was full), `on_unroutable(const bus_message&)`, `on_publish(const bus_message&,
 *   std::size_t subscriptions)`, `keeps_request_details()`, `on_request_timeout(std::uint64_t,
 *   const pending_request&)`, `on_shutdown(std::size_t subscriptions, std::size_t requests)`.
 */
template <class Derived, class Sub>
class bus_router {
 public:
  /// A subscription's state, shared.
  using sub_ptr = std::shared_ptr<Sub>;
  /// Completion handler of `async_request`.
  using request_handler = boost::asio::any_completion_handler<void(std::error_code, bus_message)>;
  /// Full `wait` subscriptions found by `route`, each with its copy of the message.
  using waiter_list = std::vector<std::pair<sub_ptr, bus_message>>;

  /// An `async_request` awaiting its reply.
  struct pending_request {
    request_handler handler;
    clock::timer_id timer = 0;
    bool has_timer = false;
    std::string address{};  // for the timeout record; set only when `keeps_request_details()`
    std::string event{};
  };

  /// The inbox `async_request` puts in `reply_to`.
  static constexpr std::string_view reply_inbox = "$reply";

  /// A core whose completions and timers run on `ex`; timeouts measured by `clk`.
  bus_router(event_bus::executor_type ex, xsn::clock& clk) : executor(std::move(ex)), clock_(&clk) {}

  const event_bus::executor_type executor;  ///< Where completions and timers run.
  std::atomic<bool> closed{false};           ///< Set once by `shutdown`.
  std::atomic<std::uint64_t> next_sub_id{1};  ///< Subscription ids.
  std::atomic<std::uint64_t> unroutable{0};   ///< Publications refused with `no_subscriber`.

  // ---- subscriptions ----

  /// Adds `s` to the table under its address; `errc::bus_closed` (and not added) after shutdown.
  std::error_code add(const sub_ptr& s) {
    std::unique_lock lock(routes_mutex_);
    if (closed.load(std::memory_order_acquire)) return errc::bus_closed;
    auto it = routes_.find(s->address);
    if (it == routes_.end()) {
      it = routes_.emplace(s->address, std::vector<sub_ptr>{}).first;
      if (s->address.back() == '*') patterns_.push_back(s->address);
    }
    it->second.push_back(s);
    ++generation_;
    return {};
  }

  /// Removes `s` from the table (nothing when it is not there).
  void remove(const Sub& s) {
    std::unique_lock lock(routes_mutex_);
    auto it = routes_.find(s.address);
    if (it == routes_.end()) return;
    std::erase_if(it->second, [&](const sub_ptr& p) { return p.get() == &s; });
    if (it->second.empty()) {
      if (s.address.back() == '*') std::erase(patterns_, s.address);
      routes_.erase(it);
    }
    ++generation_;
  }

  /// Calls `fn(const Sub&)` for every subscription, under the table's shared lock.
  template <class Fn>
  void for_each_sub(Fn fn) const {
    shared_guard lock(routes_mutex_);
    for (const auto& [address, subs] : routes_)
      for (const auto& s : subs) fn(*s);
  }

  // ---- publishing ----

  /**
   * Offers `msg` to every subscription of its address (its own, else the longest matching
   * pattern's); full `wait` subscriptions are collected in `waiters` (with their copy) when it
   * is not null. Moves from `msg` only on success. Replies (`$...`) go to their request.
   */
  std::error_code route(bus_message& msg, waiter_list* waiters) {
    if (closed.load(std::memory_order_acquire)) return errc::bus_closed;
    if (msg.address.front() == '$') return deliver_reply(msg);
    shared_guard lock(routes_mutex_);
    route_cache& cache = last_route;
    if (cache.bus != bus_id_ || cache.generation != generation_ || cache.address != msg.address) {
      const auto* found = find(msg.address);
      if (!found) {
        unroutable.fetch_add(1, std::memory_order_relaxed);
        derived().on_unroutable(msg);
        return errc::no_subscriber;
      }
      cache.bus = bus_id_;
      cache.generation = generation_;
      cache.address = msg.address;
      cache.subs = found;
    }
    const auto& subs = *cache.subs;
    derived().on_publish(msg, subs.size());
    std::error_code first;
    for (std::size_t i = 0, n = subs.size(); i < n; ++i) {
      // The last subscription takes `msg` itself, unless a refusal already happened: then `msg`
      // must stay intact for the caller.
      if (i + 1 == n && (!first || waiters != nullptr)) {
        offer_one(subs[i], msg, waiters, first);
      } else {
        bus_message copy(msg);
        offer_one(subs[i], copy, waiters, first);
      }
    }
    return first;
  }

  // ---- requests ----

  /// Starts `async_request`: registers it, publishes `msg` with a reply inbox and a fresh
  /// correlation id, and arms its timeout on the executor.
  void start_request(bus_message&& msg, event_bus::duration timeout, request_handler h) {
    const std::uint64_t id = next_correlation_.fetch_add(1, std::memory_order_relaxed);
    msg.reply_to = std::string(reply_inbox);
    msg.correlation_id = id;
    auto slot = boost::asio::get_associated_cancellation_slot(h);
    {
      std::unique_lock lock(req_mutex_);
      if (closed.load(std::memory_order_acquire)) {
        lock.unlock();
        post_completion(std::move(h), errc::bus_closed, {});
        return;
      }
      if (slot.is_connected()) {
        slot.assign([w = weak_core(), id](boost::asio::cancellation_type) {
          if (auto c = w.lock()) {
            c->complete_request(id, std::make_error_code(std::errc::operation_canceled), {}, false);
          }
        });
      }
      pending_request req{std::move(h)};
      if (derived().keeps_request_details()) {
        req.address = msg.address;
        req.event = msg.event.name;
      }
      requests_.emplace(id, std::move(req));
    }
    if (auto ec = route(msg, nullptr)) {
      complete_request(id, ec, {}, false);
      return;
    }
    // The clock is only touched on the executor.
    boost::asio::post(executor, [w = weak_core(), id, timeout] {
      if (auto c = w.lock()) c->arm_timer(id, timeout);
    });
  }

  /// Completes request `id` if it is still pending; false when it was not.
  bool complete_request(std::uint64_t id, std::error_code ec, bus_message&& msg, bool from_timer) {
    // Extracted as a node: Boost 1.81's `any_completion_handler` move-assignment recurses forever
    // (it copies its argument as an lvalue into the type-erasing constructor), so handlers are
    // only ever move-constructed here.
    typename decltype(requests_)::node_type node;
    {
      std::lock_guard lock(req_mutex_);
      auto it = requests_.find(id);
      if (it == requests_.end()) return false;
      node = requests_.extract(it);
    }
    pending_request& req = node.mapped();
    if (req.has_timer && !from_timer) post_cancel_timer(req.timer);
    if (from_timer) derived().on_request_timeout(id, req);
    post_completion(std::move(req.handler), ec, std::move(msg));
    return true;
  }

  /// Arms request `id`'s timeout; runs on the executor.
  void arm_timer(std::uint64_t id, event_bus::duration timeout) {
    std::lock_guard lock(req_mutex_);
    if (clock_ == nullptr) return;
    auto it = requests_.find(id);
    if (it == requests_.end()) return;  // answered already
    it->second.timer = clock_->schedule(clock_->now() + timeout, [w = weak_core(), id] {
      if (auto c = w.lock()) c->complete_request(id, errc::request_timeout, {}, true);
    });
    it->second.has_timer = true;
  }

  // ---- health, shutdown ----

  /// A snapshot of subscriptions, backlogs and counters.
  bus_health health() const {
    bus_health h;
    h.running = !closed.load(std::memory_order_acquire);
    h.unroutable = unroutable.load(std::memory_order_relaxed);
    {
      shared_guard lock(routes_mutex_);
      h.addresses = routes_.size();
      for (const auto& [address, subs] : routes_)
        for (const auto& s : subs) h.subscriptions.push_back(health_of(*s));
    }
    std::sort(h.subscriptions.begin(), h.subscriptions.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    std::lock_guard lock(req_mutex_);
    h.pending_requests = requests_.size();
    return h;
  }

  /// Closes every subscription and completes every pending request with `errc::bus_closed`;
  /// idempotent.
  void shutdown() {
    if (closed.exchange(true, std::memory_order_acq_rel)) return;
    std::size_t closed_subs = 0;
    {
      std::unique_lock lock(routes_mutex_);
      for (auto& [address, subs] : routes_) {
        for (auto& s : subs) s->close(close_reason::shutdown);
        closed_subs += subs.size();
      }
    }
    std::unordered_map<std::uint64_t, pending_request> pending;
    {
      std::lock_guard lock(req_mutex_);
      pending.swap(requests_);
    }
    derived().on_shutdown(closed_subs, pending.size());
    for (auto& [id, req] : pending) {
      if (req.has_timer) post_cancel_timer(req.timer);
      post_completion(std::move(req.handler), errc::bus_closed, {});
    }
  }

  /// The bus is going away: the clock may be destroyed after this, so never touch it again.
  void forget_clock() {
    std::lock_guard lock(req_mutex_);
    clock_ = nullptr;
  }

 private:
  /// Each publishing thread remembers its last lookup: a publisher usually sends to one address
  /// many times. Valid only for that bus and routing generation, and only read under the bus's
  /// shared lock, which keeps the vector alive.
  struct route_cache {
    std::uint64_t bus = 0;
    std::uint64_t generation = 0;
    std::string address;
    const std::vector<sub_ptr>* subs = nullptr;
  };
  static inline thread_local route_cache last_route;

  Derived& derived() noexcept { return static_cast<Derived&>(*this); }
  std::weak_ptr<Derived> weak_core() { return derived().weak_from_this(); }

  static std::uint64_t next_bus_id() noexcept {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  /// The subscriptions of `address`: its own, else those of the longest pattern `prefix*` that
  /// matches it. Called with the table's lock held.
  const std::vector<sub_ptr>* find(std::string_view address) const {
    if (auto it = routes_.find(address); it != routes_.end()) return &it->second;
    const std::string* best = nullptr;
    for (const auto& p : patterns_) {
      const std::string_view prefix = std::string_view(p).substr(0, p.size() - 1);
      if (address.starts_with(prefix) && (!best || p.size() > best->size())) best = &p;
    }
    if (!best) return nullptr;
    return &routes_.find(*best)->second;
  }

  /// Offers `m` to `sp`; records the first refusal in `first`; a full `wait` subscription goes
  /// to `waiters` (with `m`) when there is a list.
  void offer_one(const sub_ptr& sp, bus_message& m, waiter_list* waiters, std::error_code& first) {
    Sub& s = *sp;
    switch (derived().offer(s, m)) {
      case offer_result::queued: break;
      case offer_result::closed:
        if (!first) first = s.closed_error(true);
        break;
      case offer_result::full:
        if (waiters != nullptr && s.opts.overflow == overflow_policy::wait) {
          derived().on_full(s, m, true);
          waiters->emplace_back(sp, std::move(m));
        } else {
          if (s.opts.overflow == overflow_policy::wait) {
            s.rejected.fetch_add(1, std::memory_order_relaxed);
            derived().on_full(s, m, false);
          }
          if (!first) first = errc::queue_full;
        }
        break;
    }
  }

  static subscription_health health_of(const Sub& s) {
    subscription_health sh;
    sh.id = s.id;
    sh.address = s.address;
    sh.overflow = s.opts.overflow;
    sh.capacity = s.opts.capacity;
    sh.backlog = s.ring.size();
    sh.enqueued = s.ring.pushed();
    sh.dropped = s.dropped.load(std::memory_order_relaxed);
    sh.rejected = s.rejected.load(std::memory_order_relaxed);
    sh.waiting_publishers = s.space_waiters.load(std::memory_order_relaxed);
    return sh;
  }

  std::error_code deliver_reply(bus_message& msg) {
    if (msg.address != reply_inbox) return errc::no_subscriber;
    const std::uint64_t id = msg.correlation_id;
    if (!complete_request(id, {}, std::move(msg), false)) return errc::no_subscriber;
    return {};
  }

  void post_completion(request_handler h, std::error_code ec, bus_message msg) {
    // The cancellation slot keeps our canceller, which only holds a weak reference and finds no
    // request once this one completed; it is not cleared here because slots may only be touched
    // from the thread that emits on them.
    boost::asio::post(executor, boost::asio::append(std::move(h), ec, std::move(msg)));
  }

  void post_cancel_timer(clock::timer_id timer) {
    boost::asio::post(executor, [w = weak_core(), timer] {
      if (auto c = w.lock()) static_cast<bus_router&>(*c).cancel_timer(timer);
    });
  }

  void cancel_timer(clock::timer_id timer) {
    std::lock_guard lock(req_mutex_);
    if (clock_ != nullptr) clock_->cancel(timer);
  }

  const std::uint64_t bus_id_ = next_bus_id();
  std::atomic<std::uint64_t> next_correlation_{1};

  mutable striped_shared_mutex routes_mutex_;
  std::unordered_map<std::string, std::vector<sub_ptr>, address_hash, std::equal_to<>> routes_;
  std::uint64_t generation_ = 0;      // guarded by routes_mutex_; bumped by every change
  std::vector<std::string> patterns_;  // guarded by routes_mutex_: addresses ending in `*`

  mutable std::mutex req_mutex_;
  xsn::clock* clock_;  // guarded by req_mutex_; null once the bus is destroyed
  std::unordered_map<std::uint64_t, pending_request> requests_;
};

}  // namespace xsn::inline v0::detail
