// Part of xsn_advanced: the NUMA-sharded event bus on lock-free rings.
#include <xsn/advanced/numa_event_bus.hpp>

#include <xsn/advanced/detail/numa_ring.hpp>
#include <xsn/bus/detail/bus_router.hpp>
#include <xsn/bus/detail/packed_message.hpp>

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
#include <vector>

namespace xsn::inline v0::advanced {
namespace asio = boost::asio;

numa_subscription::~numa_subscription() = default;

namespace {

/// Checks a consumer makes of an empty ring, pausing between them, before it parks: about the
/// cost of a wake-up through the executor, so a consumer that drains faster than its producers
/// does not pay one wake-up per message.
constexpr int consumer_spin_checks = 256;

using receive_handler_t = asio::any_completion_handler<void(std::error_code, bus_message)>;
using wait_handler_t = asio::any_completion_handler<void(std::error_code)>;
using publish_handler_t = asio::any_completion_handler<void(std::error_code)>;

using xsn::detail::close_reason;
using xsn::detail::offer_result;

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
  detail::numa_ring<xsn::detail::packed_message> ring;
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
          xsn::detail::cpu_pause();
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
    const std::size_t n = ring.consume_batch(max, wait_for_claimed,
        [out](xsn::detail::packed_message& m, std::size_t i) noexcept { m.unpack(out[i]); });
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

}  // namespace

namespace detail {

/// The NUMA bus's core: the routing and requests it shares with the channel bus (`bus_router`),
/// plus the topology its shards follow.
struct numa_bus_core : xsn::detail::bus_router<numa_bus_core, sub_state>,
                       std::enable_shared_from_this<numa_bus_core> {
  numa_bus_core(event_bus::executor_type ex, xsn::clock& clk, numa_topology t)
      : bus_router(std::move(ex), clk), topology(std::move(t)) {}

  const numa_topology topology;

  /// The node id of the CPU this thread runs on (the first node when unknown).
  int calling_thread_node() const noexcept {
    const int cpu = sched_getcpu();
    const int index = cpu < 0 ? -1 : topology.index_of_cpu(cpu);
    return topology.nodes[static_cast<std::size_t>(index < 0 ? 0 : index)].id;
  }

  /// A subscription whose ring is on node `node` (`calling_thread_node`: this thread's).
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
    if ((ec = add(s))) return nullptr;
    return s;
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

  // ---- what bus_router asks of its bus (this one keeps no records) ----

  offer_result offer(sub_state& s, bus_message& m) { return advanced::offer(s, m); }
  void on_full(sub_state&, const bus_message&, bool) {}
  void on_unroutable(const bus_message&) {}
  void on_publish(const bus_message&, std::size_t) {}
  bool keeps_request_details() const { return false; }
  void on_request_timeout(std::uint64_t, const pending_request&) {}
  void on_shutdown(std::size_t, std::size_t) {}
};

}  // namespace detail

namespace {

class ring_subscription final : public numa_subscription {
 public:
  ring_subscription(sub_ptr s, std::weak_ptr<detail::numa_bus_core> core)
      : numa_subscription(s->id, s->address, s->opts, s->node), s_(std::move(s)), core_(std::move(core)) {}

  ~ring_subscription() override {
    if (auto c = core_.lock()) c->remove(*s_);
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

}  // namespace xsn::inline v0::advanced
