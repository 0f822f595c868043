#include <xsn/bus/channel_event_bus.hpp>

#include <xsn/bus/detail/bus_router.hpp>
#include <xsn/bus/detail/mpmc_ring.hpp>
#include <xsn/bus/detail/packed_message.hpp>

#include "core/logging_detail.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/experimental/channel_error.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace xsn::inline v0 {
namespace asio = boost::asio;

namespace {

/// A channel that carries no data: a wake-up. Capacity 1, so a signal sent while nobody waits is
/// kept for the next waiter (signals are hints: the waiter re-checks the ring).
using signal_channel = asio::experimental::concurrent_channel<void(boost::system::error_code)>;

/// Checks a consumer makes on an empty ring, pausing between them, before it announces a wait:
/// about as long as a wake-up through the channel and the executor costs (a few microseconds),
/// so a consumer that drains faster than its producers does not pay a wake-up per message.
constexpr int consumer_spin_checks = 256;

using detail::packed_message;

using detail::close_reason;
using detail::offer_result;

std::string_view to_string(overflow_policy p) noexcept {
  switch (p) {
    case overflow_policy::wait: return "wait";
    case overflow_policy::drop_oldest: return "drop_oldest";
    case overflow_policy::fail: return "fail";
  }
  return "unknown";
}

/// One subscription's queue and signals, shared by its handle, the routing table and pending
/// operations.
struct sub_state {
  sub_state(std::uint64_t i, std::string addr, subscription_options o, event_bus::executor_type ex,
            std::shared_ptr<spdlog::logger> logger)
      : id(i), address(std::move(addr)), opts(o), ring(o.capacity), ready(ex, 1), space(ex, 1),
        executor(std::move(ex)), log(std::move(logger)) {}

  const std::uint64_t id;
  const std::string address;
  const subscription_options opts;
  detail::mpmc_ring<packed_message> ring;
  // Cache lines by writer, so that what publishers read on every push stays shared:
  // read on every push, written once (close) or only while the queue is full (waiters).
  alignas(128) std::atomic<close_reason> closed{close_reason::open};
  std::atomic<std::size_t> space_waiters{0};  // publishers in the `wait` protocol
  // Set by a consumer about to wait on `ready`; whoever clears it sends the signal.
  alignas(128) std::atomic<bool> consumer_waiting{false};
  // The consumer's own.
  alignas(128) std::atomic<bool> receiving{false};  // an async_receive/async_wait is pending
  // Written by publishers on overflow only.
  alignas(128) std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<bool> overflowing{false};  // logged as begun, not yet as ended (logging only)
  signal_channel ready;  // consumer waits here for messages
  signal_channel space;  // `wait` publishers wait here for room
  const event_bus::executor_type executor;
  const std::shared_ptr<spdlog::logger> log;  // `xsn.bus`, the bus's

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

  void close(close_reason why) {
    close_reason expected = close_reason::open;
    closed.compare_exchange_strong(expected, why, std::memory_order_acq_rel);
    ready.close();
    space.close();
  }

  /// After a push: wakes the consumer if it waits (Dekker with `consumer_op::look`: the push's
  /// CAS and this load are sequentially consistent, as are the consumer's announcement and its
  /// emptiness check, so one of the two sees the other).
  void notify_consumer() {
    if (consumer_waiting.load(std::memory_order_seq_cst) &&
        consumer_waiting.exchange(false, std::memory_order_seq_cst)) {
      ready.try_send(boost::system::error_code{});
    }
  }

  /// Consumer, after taking `n` messages: wakes up to `n` publishers waiting for room.
  void release_space(std::size_t n) {
    if (opts.overflow != overflow_policy::wait) return;
    const std::size_t waiters = space_waiters.load(std::memory_order_seq_cst);
    for (std::size_t i = 0, k = std::min(n, waiters); i < k; ++i) {
      if (!space.try_send(boost::system::error_code{})) break;
    }
  }

  /// Consumer: takes up to `out.size()` messages; with `wait_for_claimed`, waits for a message
  /// whose slot a publisher has claimed but not yet written (0 then means empty).
  std::size_t take(std::span<bus_message> out, bool wait_for_claimed = false) {
    const std::size_t n = ring.consume_batch(out.size(), wait_for_claimed,
        [&out](packed_message& m, std::size_t i) noexcept { m.unpack(out[i]); });
    if (n != 0) {
      release_space(n);
      if (overflowing.load(std::memory_order_relaxed)) [[unlikely]] end_overflow();
      if (log->should_log(spdlog::level::trace)) [[unlikely]] {
        log->trace("receive subscription={} address={} count={}", id, detail::field(address), n);
      }
    }
    return n;
  }

  // ---- logging: overflow episodes, from the first refusal or drop to the consumer's next take ----

  /// A publisher found the queue full: `what` happened (`dropped` the oldest, `rejected` the
  /// message, or is `waiting` for room). The first of an episode is logged at `warn` (`info`
  /// for a waiting publisher: nothing is lost), each one at `debug`.
  void on_overflow(std::string_view what, const std::string* event) {
    const auto begin_level = what == "waiting" ? spdlog::level::info : spdlog::level::warn;
    if (!log->should_log(begin_level)) return;  // (debug enabled implies it)
    if (!overflowing.load(std::memory_order_relaxed) &&
        !overflowing.exchange(true, std::memory_order_relaxed) && log->should_log(begin_level)) {
      log->log(begin_level, "overflow subscription={} address={} policy={} capacity={} dropped={} rejected={}",
               id, detail::field(address), to_string(opts.overflow), opts.capacity,
               dropped.load(std::memory_order_relaxed), rejected.load(std::memory_order_relaxed));
    }
    if (!log->should_log(spdlog::level::debug)) return;
    if (event != nullptr) {
      log->debug("{} subscription={} address={} event={}", what, id, detail::field(address),
                 detail::field(*event));
    } else {
      log->debug("{} subscription={} address={}", what, id, detail::field(address));
    }
  }

  /// The consumer made room after an overflow was logged.
  void end_overflow() {
    if (!overflowing.exchange(false, std::memory_order_relaxed)) return;
    if (log->should_log(spdlog::level::info)) {
      log->info("overflow_end subscription={} address={} dropped={} rejected={} backlog={}", id,
                detail::field(address), dropped.load(std::memory_order_relaxed),
                rejected.load(std::memory_order_relaxed), ring.size());
    }
  }
};

using sub_ptr = std::shared_ptr<sub_state>;

/// Non-blocking delivery to one subscription under its policy; moves from `m` only when queued.
/// A `wait` subscription that has waiting publishers counts as full, so a newcomer does not
/// overtake them.
offer_result offer(sub_state& s, bus_message& m) {
  if (s.closed.load(std::memory_order_relaxed) != close_reason::open) return offer_result::closed;
  switch (s.opts.overflow) {
    case overflow_policy::wait:
      if (s.space_waiters.load(std::memory_order_relaxed) != 0 || !s.ring.try_push(m)) {
        return offer_result::full;
      }
      break;
    case overflow_policy::fail:
      if (!s.ring.try_push(m)) {
        s.rejected.fetch_add(1, std::memory_order_relaxed);
        s.on_overflow("rejected", &m.event.name);
        return offer_result::full;
      }
      break;
    case overflow_policy::drop_oldest:
      if (s.ring.force_push(m)) {  // `m` is gone: the record names the subscription only
        s.dropped.fetch_add(1, std::memory_order_relaxed);
        s.on_overflow("dropped", nullptr);
      }
      break;
  }
  s.notify_consumer();
  return offer_result::queued;
}

bool is_cancel(const boost::system::error_code& ec) {
  return ec == asio::experimental::error::channel_cancelled || ec == asio::error::operation_aborted;
}

using receive_handler_t = asio::any_completion_handler<void(std::error_code, bus_message)>;
using wait_handler_t = asio::any_completion_handler<void(std::error_code)>;
using publish_handler_t = asio::any_completion_handler<void(std::error_code)>;

/// Keeps the handler's own executor busy while an operation waits (Asio's outstanding-work rule;
/// the channel tracks the bus's executor itself).
template <class Handler>
asio::any_completion_executor track_work(const Handler& h, const event_bus::executor_type& ex) {
  return asio::prefer(asio::get_associated_executor(h, ex), asio::execution::outstanding_work.tracked);
}

/**
 * `async_receive` (`TakesMessage`) and `async_wait`: take (or look for) a message; when there is
 * none, wait on the `ready` channel and look again.
 *
 * This object is the channel's handler. Its associated executor is the bus's (Boost 1.81's
 * channels cannot complete on an `any_completion_executor`, which lacks `blocking.never`); its
 * cancellation slot is the user handler's, so per-operation cancellation reaches the channel
 * wait. The user handler is completed through `post`/`dispatch` on the bus's executor, which
 * hands it to the handler's own executor.
 */
template <bool TakesMessage>
struct consumer_op {
  using handler_type = std::conditional_t<TakesMessage, receive_handler_t, wait_handler_t>;
  using executor_type = event_bus::executor_type;
  using cancellation_slot_type = asio::cancellation_slot;

  sub_ptr s;
  handler_type h;
  asio::any_completion_executor work;

  executor_type get_executor() const noexcept { return s->executor; }
  cancellation_slot_type get_cancellation_slot() const noexcept {
    return asio::get_associated_cancellation_slot(h);
  }

  /// The initiation: never completes inline.
  void start() { look(true); }

  /// The channel's completion: a signal, a cancellation, or the channel was closed.
  void operator()(boost::system::error_code ec) {
    if (ec && ec != asio::experimental::error::channel_closed) {
      s->consumer_waiting.store(false, std::memory_order_relaxed);
      return finish(false, std::make_error_code(std::errc::operation_canceled), {});  // message stays queued
    }
    look(false);
  }

  void look(bool initial) {
    bus_message msg;
    bool spun = false;
    for (;;) {
      if (s->closed.load(std::memory_order_acquire) == close_reason::unsubscribed) {
        return finish(initial, std::make_error_code(std::errc::operation_canceled), {});  // queue discarded
      }
      if (ready(msg, false)) return finish(initial, {}, std::move(msg));
      // Shut down: what was queued still comes out. `closed` is loaded before the ring is looked
      // at again: a message published before the shutdown (which this load then sees) cannot be
      // missed, as it could by a `ready` that ran first and a thread preempted in between.
      if (auto closed = s->closed_error(false); closed && s->ring.empty()) return finish(initial, closed, {});
      if (!spun) {  // a short spin before paying for a wake-up
        spun = true;
        bool arrived = false;
        for (int i = 0; i < consumer_spin_checks && !arrived; ++i) {
          detail::cpu_pause();
          arrived = s->ring.front_ready();
        }
        if (arrived) continue;
      }
      // Announce the wait, then look again (Dekker with `notify_consumer`): a publisher that
      // pushed before the announcement is seen by `empty()`, one that pushes after it sees the
      // announcement and signals.
      s->consumer_waiting.store(true, std::memory_order_seq_cst);
      if (s->ring.empty() && s->closed.load(std::memory_order_seq_cst) == close_reason::open) {
        return s->ready.async_receive(std::move(*this));  // a close after this load closes `ready`
      }
      s->consumer_waiting.store(false, std::memory_order_relaxed);
      // Not empty: published, or claimed and about to be. Its publisher may not signal, so take
      // it now, waiting for the write if needed (a drop-oldest publisher may also have taken it:
      // then look again). Or closed: the loop's first checks decide.
      if (ready(msg, true)) return finish(initial, {}, std::move(msg));
    }
  }

  /// Takes a message (receive) or checks for one (wait).
  bool ready(bus_message& msg, bool wait_for_claimed) {
    if constexpr (TakesMessage) {
      return s->take(std::span<bus_message>(&msg, 1), wait_for_claimed) == 1;
    } else {
      return wait_for_claimed ? !s->ring.empty() : s->ring.front_ready();
    }
  }

  void finish(bool initial, std::error_code ec, bus_message msg) {
    auto ex = s->executor;
    s->receiving.store(false, std::memory_order_release);
    auto complete = [&](auto&& bound) {
      if (initial) {
        asio::post(ex, std::move(bound));
      } else {
        asio::dispatch(ex, std::move(bound));
      }
    };
    if constexpr (TakesMessage) {
      complete(asio::append(std::move(h), ec, std::move(msg)));
    } else {
      complete(asio::append(std::move(h), ec));
    }
  }
};

/// The part of `async_publish` that waits: for each full `wait` subscription in turn, register as
/// a waiter, retry the push, and wait on its `space` channel until the push succeeds. Like
/// `consumer_op`, this object is the channel's handler.
struct publish_wait_op {
  using executor_type = event_bus::executor_type;
  using cancellation_slot_type = asio::cancellation_slot;

  std::vector<std::pair<sub_ptr, bus_message>> waiting;
  std::error_code result;
  publish_handler_t h;
  executor_type ex;
  asio::any_completion_executor work;
  std::size_t next = 0;
  bool registered = false;

  executor_type get_executor() const noexcept { return ex; }
  cancellation_slot_type get_cancellation_slot() const noexcept {
    return asio::get_associated_cancellation_slot(h);
  }

  void start() { run(true); }

  void operator()(boost::system::error_code ec) {
    if (ec) {
      sub_state& s = *waiting[next].first;
      s.space_waiters.fetch_sub(1, std::memory_order_seq_cst);
      registered = false;
      if (is_cancel(ec)) {
        result = std::make_error_code(std::errc::operation_canceled);
        return asio::dispatch(ex, asio::append(std::move(h), result));
      }
      if (!result) result = s.closed_error(true);  // the channel was closed
      ++next;
    }
    run(false);
  }

  void run(bool initial) {
    while (next < waiting.size()) {
      auto& [sp, m] = waiting[next];
      sub_state& s = *sp;
      if (!registered) {
        s.space_waiters.fetch_add(1, std::memory_order_seq_cst);
        registered = true;
      }
      if (auto closed = s.closed_error(true)) {
        if (!result) result = closed;
      } else if (s.ring.try_push(m)) {
        s.notify_consumer();
      } else {
        return s.space.async_receive(std::move(*this));
      }
      s.space_waiters.fetch_sub(1, std::memory_order_seq_cst);
      registered = false;
      ++next;
    }
    if (initial) {
      asio::post(ex, asio::append(std::move(h), result));
    } else {
      asio::dispatch(ex, asio::append(std::move(h), result));
    }
  }
};

}  // namespace

namespace detail {

/// The channel bus's core: the shared routing and requests (`bus_router`), plus its records.
struct channel_bus_core : bus_router<channel_bus_core, sub_state>,
                         std::enable_shared_from_this<channel_bus_core> {
  channel_bus_core(event_bus::executor_type ex, xsn::clock& clk)
      : bus_router(std::move(ex), clk), log(component_logger("xsn.bus")) {}

  const std::shared_ptr<spdlog::logger> log;  // `xsn.bus`

  sub_ptr subscribe(std::string_view address, subscription_options options, std::error_code& ec) {
    if (closed.load(std::memory_order_acquire)) {
      ec = errc::bus_closed;
      return nullptr;
    }
    auto s = std::make_shared<sub_state>(next_sub_id.fetch_add(1, std::memory_order_relaxed),
                                         std::string(address), options, executor, log);
    if ((ec = add(s))) return nullptr;
    if (log->should_log(spdlog::level::info)) {
      log->info("subscribe subscription={} address={} capacity={} policy={}", s->id, field(s->address),
                options.capacity, to_string(options.overflow));
    }
    return s;
  }

  // ---- what bus_router asks of its bus ----

  offer_result offer(sub_state& s, bus_message& m) { return xsn::offer(s, m); }
  void on_full(sub_state& s, const bus_message& m, bool waiting) {
    s.on_overflow(waiting ? "waiting" : "rejected", &m.event.name);
  }
  void on_unroutable(const bus_message& msg) {
    if (log->should_log(spdlog::level::debug)) {
      log->debug("unroutable address={} event={}", field(msg.address), field(msg.event.name));
    }
  }
  void on_publish(const bus_message& msg, std::size_t subscriptions) {
    if (log->should_log(spdlog::level::trace)) [[unlikely]] {
      log->trace("publish address={} event={} subscriptions={}", field(msg.address), field(msg.event.name),
                 subscriptions);
    }
  }
  bool keeps_request_details() const { return log->should_log(spdlog::level::warn); }
  void on_request_timeout(std::uint64_t id, const pending_request& req) {
    if (log->should_log(spdlog::level::warn)) {
      log->warn("request_timeout correlation={} address={} event={}", id, field(req.address), field(req.event));
    }
  }
  void on_shutdown(std::size_t subscriptions, std::size_t requests) {
    if (log->should_log(spdlog::level::info)) {
      log->info("shutdown subscriptions={} pending_requests={} unroutable={}", subscriptions, requests,
                unroutable.load(std::memory_order_relaxed));
    }
  }
};

}  // namespace detail

namespace {

class channel_subscription final : public subscription {
 public:
  channel_subscription(sub_ptr s, std::weak_ptr<detail::channel_bus_core> core)
      : subscription(s->id, s->address, s->opts), s_(std::move(s)), core_(std::move(core)) {}

  ~channel_subscription() override {
    if (auto c = core_.lock()) c->remove(*s_);
    s_->close(close_reason::unsubscribed);
    if (s_->log->should_log(spdlog::level::info)) {
      s_->log->info("unsubscribe subscription={} address={} backlog={} enqueued={} dropped={} rejected={}",
                    s_->id, detail::field(s_->address), s_->ring.size(), s_->ring.pushed(),
                    s_->dropped.load(std::memory_order_relaxed), s_->rejected.load(std::memory_order_relaxed));
    }
  }

 protected:
  std::size_t do_try_receive(std::span<bus_message> out) override { return s_->take(out); }

  void do_async_receive(receive_handler handler) override {
    if (s_->receiving.exchange(true, std::memory_order_acq_rel)) {
      asio::post(s_->executor, asio::append(std::move(handler),
                                            std::make_error_code(std::errc::operation_in_progress),
                                            bus_message{}));
      return;
    }
    auto work = track_work(handler, s_->executor);
    consumer_op<true>{s_, std::move(handler), std::move(work)}.start();
  }

  void do_async_wait(wait_handler handler) override {
    if (s_->receiving.exchange(true, std::memory_order_acq_rel)) {
      asio::post(s_->executor, asio::append(std::move(handler),
                                            std::make_error_code(std::errc::operation_in_progress)));
      return;
    }
    auto work = track_work(handler, s_->executor);
    consumer_op<false>{s_, std::move(handler), std::move(work)}.start();
  }

  void do_cancel() override { s_->ready.cancel(); }

 private:
  sub_ptr s_;
  std::weak_ptr<detail::channel_bus_core> core_;
};

}  // namespace

channel_event_bus::channel_event_bus(executor_type ex, xsn::clock& clk)
    : event_bus(ex), core_(std::make_shared<detail::channel_bus_core>(ex, clk)) {}

channel_event_bus::~channel_event_bus() {
  core_->shutdown();
  core_->forget_clock();
}

std::unique_ptr<subscription> channel_event_bus::do_subscribe(std::string_view address,
                                                              subscription_options options,
                                                              std::error_code& ec) {
  auto s = core_->subscribe(address, options, ec);
  if (!s) return nullptr;
  return std::make_unique<channel_subscription>(std::move(s), core_);
}

std::error_code channel_event_bus::do_publish(bus_message&& msg) { return core_->route(msg, nullptr); }

void channel_event_bus::do_async_publish(bus_message&& msg, publish_handler handler) {
  std::vector<std::pair<sub_ptr, bus_message>> waiters;
  const std::error_code ec = core_->route(msg, &waiters);
  if (waiters.empty()) return fail(std::move(handler), ec);
  auto work = track_work(handler, get_executor());
  publish_wait_op{std::move(waiters), ec, std::move(handler), get_executor(), std::move(work)}.start();
}

void channel_event_bus::do_async_request(bus_message&& msg, duration timeout, request_handler handler) {
  core_->start_request(std::move(msg), timeout, std::move(handler));
}

bus_health channel_event_bus::do_health() const { return core_->health(); }

void channel_event_bus::do_shutdown() { core_->shutdown(); }

}  // namespace xsn::inline v0
