// Part of xsn_advanced: the NUMA-sharded event bus on lock-free rings.
#include <xsn/advanced/numa_event_bus.hpp>

#include <xsn/advanced/detail/numa_ring.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <string>
#include <unordered_map>
#include <vector>

namespace xsn::advanced {
namespace asio = boost::asio;

numa_subscription::~numa_subscription() = default;

namespace {

/// The reply inbox `async_request` puts in `reply_to`.
constexpr std::string_view reply_inbox = "$reply";

/// Checks a consumer makes of an empty ring, pausing between them, before it parks: about the
/// cost of a wake-up through the executor, so a consumer that drains faster than its producers
/// does not pay one wake-up per message.
constexpr int consumer_spin_checks = 256;

using receive_handler_t = asio::any_completion_handler<void(std::error_code, bus_message)>;
using wait_handler_t = asio::any_completion_handler<void(std::error_code)>;
using publish_handler_t = asio::any_completion_handler<void(std::error_code)>;
using request_handler_t = asio::any_completion_handler<void(std::error_code, bus_message)>;

/// Why a subscription stopped.
enum class close_reason : int { open = 0, unsubscribed, shutdown };

/// The executor `h` completes on, kept busy while an operation waits (Asio's outstanding-work
/// rule).
template <class Handler>
asio::any_completion_executor track_handler(const Handler& h, const event_bus::executor_type& ex) {
  return asio::prefer(asio::get_associated_executor(h, ex), asio::execution::outstanding_work.tracked);
}
/// The bus's executor, kept busy likewise (a parked consumer is what `run()` waits for).
event_bus::executor_type track_bus(const event_bus::executor_type& ex) {
  return asio::prefer(ex, asio::execution::outstanding_work.tracked);
}

struct sub_state;
using sub_ptr = std::shared_ptr<sub_state>;

/// A pending `async_receive` (`takes`) or `async_wait`.
/// Handlers are only ever move-constructed: Boost 1.81's `any_completion_handler`
/// move-assignment recurses forever.
struct consumer_op {
  template <class Handler>
  consumer_op(Handler h, const event_bus::executor_type& ex)
      : handler_work(track_handler(h, ex)), bus_work(track_bus(ex)) {
    if constexpr (std::is_same_v<Handler, receive_handler_t>) {
      takes = true;
      ::new (static_cast<void*>(&receive)) receive_handler_t(std::move(h));
    } else {
      ::new (static_cast<void*>(&wait)) wait_handler_t(std::move(h));
    }
  }
  ~consumer_op() {
    if (takes) {
      std::destroy_at(&receive);
    } else {
      std::destroy_at(&wait);
    }
  }
  consumer_op(const consumer_op&) = delete;
  consumer_op& operator=(const consumer_op&) = delete;

  bool takes = false;
  std::uint64_t number = 0;  // matches cancellations to this operation
  union {
    receive_handler_t receive;
    wait_handler_t wait;
  };
  asio::any_completion_executor handler_work;
  event_bus::executor_type bus_work;
};
using consumer_ptr = std::unique_ptr<consumer_op>;

/**
 * An `async_publish` that waits for room in full `wait` subscriptions, one after the other.
 * Owned by one party at a time: the thread advancing it, or the subscription whose waiter queue
 * holds it; whoever takes it out of a queue (the consumer making room, a close, a cancellation)
 * becomes the owner.
 */
struct publish_op {
  publish_op(std::vector<std::pair<sub_ptr, bus_message>> t, std::error_code first, publish_handler_t h,
             const event_bus::executor_type& executor)
      : targets(std::move(t)), result(first), handler_work(track_handler(h, executor)),
        bus_work(track_bus(executor)), ex(executor), handler(std::move(h)) {}

  std::vector<std::pair<sub_ptr, bus_message>> targets;
  std::atomic<std::size_t> next{0};
  std::atomic<bool> cancel_requested{false};
  std::error_code result;
  asio::any_completion_executor handler_work;
  event_bus::executor_type bus_work;
  event_bus::executor_type ex;
  publish_handler_t handler;
};
using publish_ptr = std::shared_ptr<publish_op>;

void advance(const publish_ptr& op);

/// One subscription's queue and waiting state, in its node's shard; shared by its handle, the
/// routing table and pending operations.
struct sub_state : std::enable_shared_from_this<sub_state> {
  sub_state(std::uint64_t i, std::string addr, subscription_options o, int node_id, int memory_node,
            event_bus::executor_type exec)
      : id(i), address(std::move(addr)), opts(o), node(node_id), ring(o.capacity, memory_node),
        executor(std::move(exec)) {}

  const std::uint64_t id;
  const std::string address;
  const subscription_options opts;
  const int node;  // node id of the shard
  detail::numa_ring<bus_message> ring;
  const event_bus::executor_type executor;
  // Read by publishers on every push; written once, or while the queue is full.
  alignas(detail::index_padding) std::atomic<close_reason> closed{close_reason::open};
  std::atomic<std::size_t> space_waiters{0};
  // Set by a consumer about to park; whoever clears it wakes the consumer.
  alignas(detail::index_padding) std::atomic<bool> consumer_waiting{false};
  // The consumer's own.
  alignas(detail::index_padding) std::atomic<bool> receiving{false};
  std::atomic<std::uint64_t> current_op{0};
  // Written by publishers on overflow only.
  alignas(detail::index_padding) std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> rejected{0};
  // The slow path: parked consumer, waiting publishers, pending cancellations.
  alignas(detail::index_padding) std::mutex m;
  consumer_ptr parked;                   // guarded by m
  std::uint64_t cancel_op = 0;           // guarded by m: cancel this operation when it parks
  std::deque<publish_ptr> waiters;       // guarded by m: FIFO; one entry per pending operation

  /// The error a closed subscription reports to a consumer or a waiting publisher.
  std::error_code closed_error(bool publisher) const noexcept {
    switch (closed.load(std::memory_order_acquire)) {
      case close_reason::open: return {};
      case close_reason::shutdown: return errc::bus_closed;
      case close_reason::unsubscribed: break;
    }
    if (publisher) return errc::no_subscriber;
    return std::make_error_code(std::errc::operation_canceled);
  }

  // ---- consumer ----

  void complete(consumer_ptr op, bool initial, std::error_code ec, bus_message msg = {}) {
    receiving.store(false, std::memory_order_release);
    auto finish = [&](auto&& bound) {
      if (initial) {
        asio::post(executor, std::move(bound));
      } else {
        asio::dispatch(executor, std::move(bound));
      }
    };
    if (op->takes) {
      finish(asio::append(std::move(op->receive), ec, std::move(msg)));
    } else {
      finish(asio::append(std::move(op->wait), ec));
    }
  }

  /// Takes a message (receive) or checks for one (wait); completes `op` and returns true when so.
  bool try_complete(consumer_ptr& op, bool initial, bool wait_for_claimed) {
    if (op->takes) {
      bus_message msg;
      if (take(&msg, 1, wait_for_claimed) == 0) return false;
      complete(std::move(op), initial, {}, std::move(msg));
      return true;
    }
    // Completing while the oldest message is claimed but unwritten would let the consumer's
    // `try_receive_batch` find nothing and wait again, round and round through the executor.
    if (!(wait_for_claimed ? ring.wait_front_ready() : ring.front_ready())) return false;
    complete(std::move(op), initial, {});
    return true;
  }

  /// Completes `op` with a message (or readiness), or parks it until a publisher wakes it.
  void look(consumer_ptr op, bool initial) {
    bool spun = false;
    for (;;) {
      if (closed.load(std::memory_order_acquire) == close_reason::unsubscribed) {
        return complete(std::move(op), initial, std::make_error_code(std::errc::operation_canceled));
      }
      if (try_complete(op, initial, false)) return;
      if (auto ec = closed_error(false); ec && ring.empty()) return complete(std::move(op), initial, ec);
      if (!spun) {
        spun = true;
        bool arrived = false;
        for (int i = 0; i < consumer_spin_checks && !arrived; ++i) {
          detail::ring_backoff::pause();
          arrived = ring.front_ready();
        }
        if (arrived) continue;
      }
      {
        std::unique_lock lock(m);
        if (cancel_op == op->number) {
          cancel_op = 0;
          lock.unlock();
          return complete(std::move(op), initial, std::make_error_code(std::errc::operation_canceled));
        }
        // Announce, then look (Dekker with `notify_consumer`): a push before the announcement is
        // seen by `empty()`, a push after it sees the announcement.
        consumer_waiting.store(true, std::memory_order_seq_cst);
        if (ring.empty() && closed.load(std::memory_order_seq_cst) == close_reason::open) {
          parked = std::move(op);
          return;
        }
        consumer_waiting.store(false, std::memory_order_relaxed);
      }
      // Queued (perhaps claimed, not yet written: its publisher may not wake us) or closed.
      if (try_complete(op, initial, true)) return;
    }
  }

  /// Takes the parked consumer, if any, and has it look again on the executor.
  void wake_consumer() {
    consumer_ptr op;
    {
      std::lock_guard lock(m);
      op = std::move(parked);
    }
    if (!op) return;
    asio::post(executor, [self = shared_from_this(), o = std::move(op)]() mutable {
      self->look(std::move(o), false);
    });
  }

  /// After a push: wakes the consumer if it is parked.
  void notify_consumer() {
    if (consumer_waiting.load(std::memory_order_seq_cst) &&
        consumer_waiting.exchange(false, std::memory_order_seq_cst)) {
      wake_consumer();
    }
  }

  /// Cancels operation `number` (0: whichever is pending): completes it if parked, else marks it
  /// so that it completes instead of parking.
  void cancel(std::uint64_t number) {
    consumer_ptr op;
    {
      std::lock_guard lock(m);
      if (number == 0) number = current_op.load(std::memory_order_acquire);
      if (parked && parked->number == number) {
        op = std::move(parked);
        consumer_waiting.store(false, std::memory_order_relaxed);
      } else if (receiving.load(std::memory_order_acquire)) {
        cancel_op = number;
      }
    }
    if (op) complete(std::move(op), true, std::make_error_code(std::errc::operation_canceled));
  }

  void start_consumer(consumer_ptr op) {
    op->number = current_op.fetch_add(1, std::memory_order_acq_rel) + 1;
    auto slot = op->takes ? asio::get_associated_cancellation_slot(op->receive)
                          : asio::get_associated_cancellation_slot(op->wait);
    if (slot.is_connected()) {
      slot.assign([w = weak_from_this(), n = op->number](asio::cancellation_type) {
        if (auto self = w.lock()) self->cancel(n);
      });
    }
    look(std::move(op), true);
  }

  /// Consumer: takes up to `max` messages, then lets waiting publishers fill the room.
  std::size_t take(bus_message* out, std::size_t max, bool wait_for_claimed) {
    const std::size_t n = ring.pop_batch(out, max, wait_for_claimed);
    if (n != 0 && opts.overflow == overflow_policy::wait &&
        space_waiters.load(std::memory_order_seq_cst) != 0) {
      admit_waiters();
    }
    return n;
  }

  // ---- waiting publishers ----

  /// Moves the messages of waiting publishers into the ring, oldest waiter first, while there
  /// is room; their operations continue on the executor.
  void admit_waiters() {
    std::vector<publish_ptr> admitted;
    {
      std::lock_guard lock(m);
      while (!waiters.empty()) {
        publish_op& op = *waiters.front();
        if (!ring.try_push(op.targets[op.next.load(std::memory_order_relaxed)].second)) break;
        admitted.push_back(std::move(waiters.front()));
        waiters.pop_front();
        space_waiters.fetch_sub(1, std::memory_order_seq_cst);
      }
    }
    for (auto& op : admitted) {
      op->next.fetch_add(1, std::memory_order_seq_cst);
      asio::post(executor, [o = std::move(op)] { advance(o); });
    }
  }

  enum class wait_result { queued, waiting, closed, canceled };

  /// Queues `op`'s message for this subscription, or makes it wait behind earlier waiters.
  wait_result enqueue_or_wait(const publish_ptr& op, bus_message& msg) {
    std::lock_guard lock(m);
    if (closed.load(std::memory_order_acquire) != close_reason::open) return wait_result::closed;
    if (op->cancel_requested.load(std::memory_order_seq_cst)) return wait_result::canceled;
    if (waiters.empty()) {
      space_waiters.fetch_add(1, std::memory_order_seq_cst);  // before the retry: Dekker with take()
      if (ring.try_push(msg)) {
        space_waiters.fetch_sub(1, std::memory_order_seq_cst);
        return wait_result::queued;
      }
      waiters.push_back(op);
      return wait_result::waiting;
    }
    space_waiters.fetch_add(1, std::memory_order_seq_cst);
    waiters.push_back(op);
    return wait_result::waiting;
  }

  /// Removes `op` from the waiters; false when it is not waiting here (any more).
  bool remove_waiter(const publish_op* op) {
    std::lock_guard lock(m);
    auto it = std::find_if(waiters.begin(), waiters.end(), [&](const publish_ptr& p) { return p.get() == op; });
    if (it == waiters.end()) return false;
    waiters.erase(it);
    space_waiters.fetch_sub(1, std::memory_order_seq_cst);
    return true;
  }

  // ---- closing ----

  void close(close_reason why) {
    close_reason expected = close_reason::open;
    closed.compare_exchange_strong(expected, why, std::memory_order_seq_cst);
    wake_consumer();
    std::deque<publish_ptr> stopped;
    {
      std::lock_guard lock(m);
      stopped.swap(waiters);
      space_waiters.store(0, std::memory_order_seq_cst);
    }
    const std::error_code ec = closed_error(true);
    for (auto& op : stopped) {
      if (!op->result) op->result = ec;
      op->next.fetch_add(1, std::memory_order_seq_cst);
      asio::post(executor, [o = std::move(op)] { advance(o); });
    }
  }
};

void complete_publish(const publish_ptr& op, std::error_code ec) {
  asio::post(op->ex, asio::append(std::move(op->handler), ec));
}

/// Runs `op` on: queues its message on each remaining subscription, waiting where one is full.
void advance(const publish_ptr& op) {
  for (;;) {
    const std::size_t i = op->next.load(std::memory_order_seq_cst);
    if (i >= op->targets.size()) return complete_publish(op, op->result);
    if (op->cancel_requested.load(std::memory_order_seq_cst)) {
      return complete_publish(op, std::make_error_code(std::errc::operation_canceled));
    }
    auto& [s, msg] = op->targets[i];
    switch (s->enqueue_or_wait(op, msg)) {
      case sub_state::wait_result::queued: s->notify_consumer(); break;
      case sub_state::wait_result::closed:
        if (!op->result) op->result = s->closed_error(true);
        break;
      case sub_state::wait_result::canceled:
        return complete_publish(op, std::make_error_code(std::errc::operation_canceled));
      case sub_state::wait_result::waiting: return;  // the subscription owns it now
    }
    op->next.fetch_add(1, std::memory_order_seq_cst);
  }
}

/// What offering a message to one subscription did.
enum class offer_result { queued, full, closed };

/// Non-blocking delivery under the subscription's policy; moves from `m` only when queued. A
/// `wait` subscription with waiting publishers counts as full, so a newcomer does not overtake.
offer_result offer(sub_state& s, bus_message& m) {
  if (s.closed.load(std::memory_order_relaxed) != close_reason::open) return offer_result::closed;
  switch (s.opts.overflow) {
    case overflow_policy::wait:
      if (s.space_waiters.load(std::memory_order_relaxed) != 0 || !s.ring.try_push(m)) return offer_result::full;
      break;
    case overflow_policy::fail:
      if (!s.ring.try_push(m)) {
        s.rejected.fetch_add(1, std::memory_order_relaxed);
        return offer_result::full;
      }
      break;
    case overflow_policy::drop_oldest:
      if (s.ring.force_push(m)) s.dropped.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  s.notify_consumer();
  return offer_result::queued;
}

/**
 * A reader-writer lock for the routing table whose readers (publishers) each count themselves on
 * their own cache line, so they never contend; writers (subscribe, unsubscribe, shutdown) raise
 * a flag and wait for the readers in flight.
 */
class route_lock {
 public:
  std::size_t lock_shared() noexcept {
    const std::size_t i = stripe_of_this_thread();
    for (;;) {
      stripes_[i].readers.fetch_add(1, std::memory_order_seq_cst);
      if (!writer_.load(std::memory_order_seq_cst)) return i;
      stripes_[i].readers.fetch_sub(1, std::memory_order_release);
      std::lock_guard wait_for_writer(writer_mutex_);
    }
  }
  void unlock_shared(std::size_t i) noexcept { stripes_[i].readers.fetch_sub(1, std::memory_order_release); }
  void lock() {
    writer_mutex_.lock();
    writer_.store(true, std::memory_order_seq_cst);
    for (auto& s : stripes_) {
      detail::ring_backoff b;
      while (s.readers.load(std::memory_order_acquire) != 0) b.wait();
    }
  }
  void unlock() {
    writer_.store(false, std::memory_order_release);
    writer_mutex_.unlock();
  }

 private:
  static constexpr std::size_t stripe_count = 16;
  static std::size_t stripe_of_this_thread() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed) % stripe_count;
    return mine;
  }
  struct alignas(detail::index_padding) stripe {
    std::atomic<std::size_t> readers{0};
  };
  stripe stripes_[stripe_count];
  std::atomic<bool> writer_{false};
  std::mutex writer_mutex_;
};

class shared_route_guard {
 public:
  explicit shared_route_guard(route_lock& l) noexcept : l_(l), stripe_(l.lock_shared()) {}
  ~shared_route_guard() { l_.unlock_shared(stripe_); }
  shared_route_guard(const shared_route_guard&) = delete;
  shared_route_guard& operator=(const shared_route_guard&) = delete;

 private:
  route_lock& l_;
  std::size_t stripe_;
};

/// FNV-1a: addresses are short.
struct address_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    std::uint64_t h = 14695981039346656037ull;
    for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

/// Each publishing thread remembers its last lookup (valid for one bus and routing generation,
/// read only under the bus's shared lock, which keeps the vector alive).
struct route_cache {
  std::uint64_t bus = 0;
  std::uint64_t generation = 0;
  std::string address;
  const std::vector<sub_ptr>* subs = nullptr;
};
thread_local route_cache last_route;

}  // namespace

namespace detail {

struct numa_bus_core : std::enable_shared_from_this<numa_bus_core> {
  struct pending_request {
    request_handler_t handler;
    clock::timer_id timer = 0;
    bool has_timer = false;
  };

  numa_bus_core(event_bus::executor_type ex, xsn::clock& clk, numa_topology t)
      : executor(std::move(ex)), topology(std::move(t)), clock_(&clk) {}

  const event_bus::executor_type executor;
  const numa_topology topology;
  std::atomic<bool> closed{false};
  std::atomic<std::uint64_t> next_sub_id{1};
  std::atomic<std::uint64_t> next_correlation{1};
  std::atomic<std::uint64_t> unroutable{0};
  const std::uint64_t bus_id = next_bus_id();

  mutable route_lock routes_lock;
  std::unordered_map<std::string, std::vector<sub_ptr>, address_hash, std::equal_to<>> routes;
  std::uint64_t generation = 0;     // guarded by routes_lock
  std::vector<std::string> patterns;  // guarded by routes_lock: addresses ending in `*`

  mutable std::mutex req_mutex;
  xsn::clock* clock_;  // guarded by req_mutex; null once the bus is destroyed
  std::unordered_map<std::uint64_t, pending_request> requests;

  static std::uint64_t next_bus_id() noexcept {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  /// The node id of the CPU this thread runs on (the first node when unknown).
  int calling_thread_node() const noexcept {
    const int cpu = sched_getcpu();
    const int index = cpu < 0 ? -1 : topology.index_of_cpu(cpu);
    return topology.nodes[static_cast<std::size_t>(index < 0 ? 0 : index)].id;
  }

  // ---- subscriptions ----

  sub_ptr subscribe(std::string_view address, subscription_options options, int node, std::error_code& ec) {
    if (node == numa_subscription_options::calling_thread_node) node = calling_thread_node();
    if (topology.index_of_node(node) < 0) {
      ec = errc::invalid_argument;
      return nullptr;
    }
    if (closed.load(std::memory_order_acquire)) {  // before allocating the ring
      ec = errc::bus_closed;
      return nullptr;
    }
    auto s = std::make_shared<sub_state>(next_sub_id.fetch_add(1, std::memory_order_relaxed),
                                         std::string(address), options, node, node, executor);
    std::unique_lock lock(routes_lock);
    if (closed.load(std::memory_order_acquire)) {
      ec = errc::bus_closed;
      return nullptr;
    }
    auto it = routes.find(address);
    if (it == routes.end()) {
      it = routes.emplace(std::string(address), std::vector<sub_ptr>{}).first;
      if (address.back() == '*') patterns.emplace_back(address);
    }
    it->second.push_back(s);
    ++generation;
    return s;
  }

  void unsubscribe(const sub_state& s) {
    std::unique_lock lock(routes_lock);
    auto it = routes.find(s.address);
    if (it == routes.end()) return;
    std::erase_if(it->second, [&](const sub_ptr& p) { return p.get() == &s; });
    if (it->second.empty()) {
      if (s.address.back() == '*') std::erase(patterns, s.address);
      routes.erase(it);
    }
    ++generation;
  }

  /// The subscriptions of `address`, else those of the longest matching pattern. Under the lock.
  const std::vector<sub_ptr>* find(std::string_view address) const {
    if (auto it = routes.find(address); it != routes.end()) return &it->second;
    const std::string* best = nullptr;
    for (const auto& p : patterns) {
      const std::string_view prefix = std::string_view(p).substr(0, p.size() - 1);
      if (address.starts_with(prefix) && (!best || p.size() > best->size())) best = &p;
    }
    if (!best) return nullptr;
    return &routes.find(*best)->second;
  }

  // ---- publishing ----

  /// Offers `msg` to every subscription of its address; full `wait` subscriptions are collected
  /// in `waiters` (with their copy) when it is not null. Moves from `msg` only on success.
  std::error_code route(bus_message& msg, std::vector<std::pair<sub_ptr, bus_message>>* waiters) {
    if (closed.load(std::memory_order_acquire)) return errc::bus_closed;
    if (msg.address.front() == '$') return deliver_reply(msg);
    shared_route_guard lock(routes_lock);
    route_cache& cache = last_route;
    if (cache.bus != bus_id || cache.generation != generation || cache.address != msg.address) {
      const auto* found = find(msg.address);
      if (!found) {
        unroutable.fetch_add(1, std::memory_order_relaxed);
        return errc::no_subscriber;
      }
      cache.bus = bus_id;
      cache.generation = generation;
      cache.address = msg.address;
      cache.subs = found;
    }
    const auto& subs = *cache.subs;
    std::error_code first;
    for (std::size_t i = 0, n = subs.size(); i < n; ++i) {
      sub_state& s = *subs[i];
      // The last subscription takes `msg` itself unless a refusal already happened (then `msg`
      // must stay intact for the caller).
      const bool original = i + 1 == n && (!first || waiters != nullptr);
      bus_message copy;
      if (!original) copy = msg;
      bus_message& m = original ? msg : copy;
      switch (offer(s, m)) {
        case offer_result::queued: break;
        case offer_result::closed:
          if (!first) first = s.closed_error(true);
          break;
        case offer_result::full:
          if (waiters != nullptr && s.opts.overflow == overflow_policy::wait) {
            waiters->emplace_back(subs[i], std::move(m));
          } else {
            if (s.opts.overflow == overflow_policy::wait) s.rejected.fetch_add(1, std::memory_order_relaxed);
            if (!first) first = errc::queue_full;
          }
          break;
      }
    }
    return first;
  }

  // ---- requests ----

  std::error_code deliver_reply(bus_message& msg) {
    if (msg.address != reply_inbox) return errc::no_subscriber;
    if (!complete_request(msg.correlation_id, {}, std::move(msg), false)) return errc::no_subscriber;
    return {};
  }

  /// Completes request `id` if still pending; false when it was not.
  bool complete_request(std::uint64_t id, std::error_code ec, bus_message&& msg, bool from_timer) {
    // Extracted as a node: handlers are only ever move-constructed (Boost 1.81's
    // `any_completion_handler` move-assignment is broken).
    decltype(requests)::node_type node;
    {
      std::lock_guard lock(req_mutex);
      auto it = requests.find(id);
      if (it == requests.end()) return false;
      node = requests.extract(it);
    }
    pending_request& req = node.mapped();
    if (req.has_timer && !from_timer) post_cancel_timer(req.timer);
    asio::post(executor, asio::append(std::move(req.handler), ec, std::move(msg)));
    return true;
  }

  void post_cancel_timer(clock::timer_id timer) {
    asio::post(executor, [w = weak_from_this(), timer] {
      if (auto c = w.lock()) {
        std::lock_guard lock(c->req_mutex);
        if (c->clock_ != nullptr) c->clock_->cancel(timer);
      }
    });
  }

  void start_request(bus_message&& msg, event_bus::duration timeout, request_handler_t h) {
    const std::uint64_t id = next_correlation.fetch_add(1, std::memory_order_relaxed);
    msg.reply_to = std::string(reply_inbox);
    msg.correlation_id = id;
    auto slot = asio::get_associated_cancellation_slot(h);
    {
      std::unique_lock lock(req_mutex);
      if (closed.load(std::memory_order_acquire)) {
        lock.unlock();
        asio::post(executor, asio::append(std::move(h), std::error_code(errc::bus_closed), bus_message{}));
        return;
      }
      if (slot.is_connected()) {
        slot.assign([w = weak_from_this(), id](asio::cancellation_type) {
          if (auto c = w.lock()) c->complete_request(id, std::make_error_code(std::errc::operation_canceled), {}, false);
        });
      }
      requests.emplace(id, pending_request{std::move(h)});
    }
    if (auto ec = route(msg, nullptr)) {
      complete_request(id, ec, {}, false);
      return;
    }
    asio::post(executor, [w = weak_from_this(), id, timeout] {  // the clock is only used here
      if (auto c = w.lock()) c->arm_timer(id, timeout);
    });
  }

  void arm_timer(std::uint64_t id, event_bus::duration timeout) {
    std::lock_guard lock(req_mutex);
    if (clock_ == nullptr) return;
    auto it = requests.find(id);
    if (it == requests.end()) return;
    it->second.timer = clock_->schedule(clock_->now() + timeout, [w = weak_from_this(), id] {
      if (auto c = w.lock()) c->complete_request(id, errc::request_timeout, {}, true);
    });
    it->second.has_timer = true;
  }

  // ---- health, shutdown ----

  template <class Fn>
  void for_each_sub(Fn fn) const {
    shared_route_guard lock(routes_lock);
    for (const auto& [address, subs] : routes) {
      for (const auto& s : subs) fn(*s);
    }
  }

  bus_health health() const {
    bus_health h;
    h.running = !closed.load(std::memory_order_acquire);
    h.unroutable = unroutable.load(std::memory_order_relaxed);
    {
      shared_route_guard lock(routes_lock);
      h.addresses = routes.size();
    }
    for_each_sub([&](const sub_state& s) {
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
      h.subscriptions.push_back(std::move(sh));
    });
    std::sort(h.subscriptions.begin(), h.subscriptions.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    std::lock_guard lock(req_mutex);
    h.pending_requests = requests.size();
    return h;
  }

  std::vector<numa_shard_health> shards() const {
    std::vector<numa_shard_health> out;
    for (const auto& n : topology.nodes) out.push_back({n.id, n.cpus.size(), 0, 0, 0});
    for_each_sub([&](const sub_state& s) {
      auto& sh = out[static_cast<std::size_t>(topology.index_of_node(s.node))];
      ++sh.subscriptions;
      sh.backlog += s.ring.size();
      sh.enqueued += s.ring.pushed();
    });
    return out;
  }

  void shutdown() {
    if (closed.exchange(true, std::memory_order_acq_rel)) return;
    {
      std::unique_lock lock(routes_lock);
      for (auto& [address, subs] : routes) {
        for (auto& s : subs) s->close(close_reason::shutdown);
      }
    }
    std::unordered_map<std::uint64_t, pending_request> pending;
    {
      std::lock_guard lock(req_mutex);
      pending.swap(requests);
    }
    for (auto& [id, req] : pending) {
      if (req.has_timer) post_cancel_timer(req.timer);
      asio::post(executor, asio::append(std::move(req.handler), std::error_code(errc::bus_closed), bus_message{}));
    }
  }

  /// The bus is going away: never touch the clock again.
  void forget_clock() {
    std::lock_guard lock(req_mutex);
    clock_ = nullptr;
  }
};

}  // namespace detail

namespace {

class ring_subscription final : public numa_subscription {
 public:
  ring_subscription(sub_ptr s, std::weak_ptr<detail::numa_bus_core> core)
      : numa_subscription(s->id, s->address, s->opts, s->node), s_(std::move(s)), core_(std::move(core)) {}

  ~ring_subscription() override {
    if (auto c = core_.lock()) c->unsubscribe(*s_);
    s_->close(close_reason::unsubscribed);
  }

 protected:
  std::size_t do_try_receive(std::span<bus_message> out) override {
    return s_->take(out.data(), out.size(), false);
  }

  void do_async_receive(receive_handler handler) override {
    if (s_->receiving.exchange(true, std::memory_order_acq_rel)) {
      asio::post(s_->executor, asio::append(std::move(handler),
                                            std::make_error_code(std::errc::operation_in_progress), bus_message{}));
      return;
    }
    s_->start_consumer(std::make_unique<consumer_op>(std::move(handler), s_->executor));
  }

  void do_async_wait(wait_handler handler) override {
    if (s_->receiving.exchange(true, std::memory_order_acq_rel)) {
      asio::post(s_->executor, asio::append(std::move(handler), std::make_error_code(std::errc::operation_in_progress)));
      return;
    }
    s_->start_consumer(std::make_unique<consumer_op>(std::move(handler), s_->executor));
  }

  void do_cancel() override { s_->cancel(0); }

 private:
  sub_ptr s_;
  std::weak_ptr<detail::numa_bus_core> core_;
};

}  // namespace

numa_event_bus::numa_event_bus(executor_type ex, xsn::clock& clk)
    : numa_event_bus(std::move(ex), clk, numa_topology::detect()) {}

numa_event_bus::numa_event_bus(executor_type ex, xsn::clock& clk, numa_topology topology) : event_bus(ex) {
  if (topology.validate()) {
    throw std::invalid_argument(
        "xsn::advanced::numa_event_bus: invalid topology (no node, a negative or repeated node id, "
        "or a negative CPU id or one in two nodes)");
  }
  core_ = std::make_shared<detail::numa_bus_core>(std::move(ex), clk, std::move(topology));
}

numa_event_bus::~numa_event_bus() {
  core_->shutdown();
  core_->forget_clock();
}

std::unique_ptr<numa_subscription> numa_event_bus::subscribe_pinned(std::string_view address,
                                                                    const numa_subscription_options& options,
                                                                    std::error_code& ec) {
  ec.clear();
  if (address.empty() || address.front() == '$') {  // the interface's checks, as `subscribe`
    ec = errc::invalid_address;
    return nullptr;
  }
  const std::size_t capacity = options.queue.capacity;
  if (capacity == 0 || capacity > subscription_options::max_capacity) {
    ec = errc::invalid_argument;
    return nullptr;
  }
  auto s = core_->subscribe(address, options.queue, options.node, ec);
  if (!s) return nullptr;
  return std::make_unique<ring_subscription>(std::move(s), core_);
}

std::unique_ptr<numa_subscription> numa_event_bus::subscribe_pinned(std::string_view address,
                                                                    const numa_subscription_options& options) {
  std::error_code ec;
  auto sub = subscribe_pinned(address, options, ec);
  if (ec) throw std::system_error(ec, "xsn::advanced::numa_event_bus::subscribe_pinned");
  return sub;
}

const numa_topology& numa_event_bus::topology() const noexcept { return core_->topology; }

std::vector<numa_shard_health> numa_event_bus::shards() const { return core_->shards(); }

std::unique_ptr<subscription> numa_event_bus::do_subscribe(std::string_view address, subscription_options options,
                                                           std::error_code& ec) {
  auto s = core_->subscribe(address, options, numa_subscription_options::calling_thread_node, ec);
  if (!s) return nullptr;
  return std::make_unique<ring_subscription>(std::move(s), core_);
}

std::error_code numa_event_bus::do_publish(bus_message&& msg) { return core_->route(msg, nullptr); }

void numa_event_bus::do_async_publish(bus_message&& msg, publish_handler handler) {
  std::vector<std::pair<sub_ptr, bus_message>> waiting;
  const std::error_code ec = core_->route(msg, &waiting);
  if (waiting.empty()) return fail(std::move(handler), ec);
  auto slot = asio::get_associated_cancellation_slot(handler);
  auto op = std::make_shared<publish_op>(std::move(waiting), ec, std::move(handler), get_executor());
  if (slot.is_connected()) {
    slot.assign([w = std::weak_ptr<publish_op>(op)](asio::cancellation_type) {
      auto o = w.lock();
      if (!o) return;
      o->cancel_requested.store(true, std::memory_order_seq_cst);
      const std::size_t i = o->next.load(std::memory_order_seq_cst);
      if (i < o->targets.size() && o->targets[i].first->remove_waiter(o.get())) {
        complete_publish(o, std::make_error_code(std::errc::operation_canceled));
      }
    });
  }
  advance(op);
}

void numa_event_bus::do_async_request(bus_message&& msg, duration timeout, request_handler handler) {
  core_->start_request(std::move(msg), timeout, std::move(handler));
}

bus_health numa_event_bus::do_health() const { return core_->health(); }

void numa_event_bus::do_shutdown() { core_->shutdown(); }

}  // namespace xsn::advanced
