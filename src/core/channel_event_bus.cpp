#include <xsn/bus/channel_event_bus.hpp>

#include <xsn/detail/mpmc_ring.hpp>

#include "logging_detail.hpp"

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
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace xsn {
namespace asio = boost::asio;

namespace {

/// A channel that carries no data: a wake-up. Capacity 1, so a signal sent while nobody waits is
/// kept for the next waiter (signals are hints: the waiter re-checks the ring).
using signal_channel = asio::experimental::concurrent_channel<void(boost::system::error_code)>;

/// The reply inbox `async_request` puts in `reply_to`.
constexpr std::string_view reply_inbox = "$reply";

/// Checks a consumer makes on an empty ring, pausing between them, before it announces a wait:
/// about as long as a wake-up through the channel and the executor costs (a few microseconds),
/// so a consumer that drains faster than its producers does not pay a wake-up per message.
constexpr int consumer_spin_checks = 256;

void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/**
 * A `bus_message` as a subscription's ring holds it. What every message uses (address, name,
 * data, the scalars) comes first and, with the slot's stamp, fills two cache lines; the five
 * strings that are usually empty (`sendid`, `origin`, `origintype`, `invokeid`, `reply_to`) are
 * constructed only when set. A typical message therefore writes, and moves from the publisher's
 * core to the consumer's, two cache lines instead of five.
 */
class packed_message {
 public:
  explicit packed_message(bus_message&& m) noexcept
      : correlation_id_(m.correlation_id), resolved_by_(m.event.resolved_by),
        name_id_(m.event.name_id), type_(m.event.type), address_(std::move(m.address)),
        name_(std::move(m.event.name)), data_(std::move(m.event.data)) {
    for (unsigned i = 0; i < rare_count; ++i) {
      std::string& field = rare(m, i);
      if (field.empty()) continue;
      std::construct_at(&rare_[i].s, std::move(field));
      present_ |= static_cast<std::uint8_t>(1u << i);
    }
  }
  ~packed_message() {
    for (unsigned i = 0; i < rare_count; ++i)
      if (present_ & (1u << i)) std::destroy_at(&rare_[i].s);
  }
  packed_message(const packed_message&) = delete;
  packed_message& operator=(const packed_message&) = delete;

  /// Moves the message into `out`, replacing what it held.
  void unpack(bus_message& out) noexcept {
    out.address = std::move(address_);
    out.event.name = std::move(name_);
    out.event.type = type_;
    out.event.name_id = name_id_;
    out.event.resolved_by = resolved_by_;
    out.correlation_id = correlation_id_;
    // Replaced, not assigned: the data keeps its memory resource, as a move would.
    std::destroy_at(&out.event.data);
    std::construct_at(&out.event.data, std::move(data_));
    for (unsigned i = 0; i < rare_count; ++i) {
      std::string& field = rare(out, i);
      if (present_ & (1u << i)) {
        field = std::move(rare_[i].s);
      } else {
        field.clear();
      }
    }
  }

 private:
  static constexpr unsigned rare_count = 5;
  static std::string& rare(bus_message& m, unsigned i) noexcept {
    switch (i) {
      case 0: return m.event.sendid;
      case 1: return m.event.origin;
      case 2: return m.event.origintype;
      case 3: return m.event.invokeid;
      default: return m.reply_to;
    }
  }
  union rare_string {
    rare_string() noexcept {}
    ~rare_string() {}
    std::string s;
  };

  std::uint64_t correlation_id_;
  const void* resolved_by_;
  std::uint32_t name_id_;
  event_type type_;
  std::uint8_t present_ = 0;  // bit i: rare_[i] is constructed
  std::string address_;
  std::string name_;
  value data_;
  rare_string rare_[rare_count];
};

/// Why a subscription stopped (its `closed` value).
enum class close_reason : int { open = 0, unsubscribed, shutdown };

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

/// What offering a message to one subscription did.
enum class offer_result { queued, full, closed };

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
using request_handler_t = asio::any_completion_handler<void(std::error_code, bus_message)>;

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
      if (ready(msg, false)) return finish(initial, {}, std::move(msg));
      if (auto closed = s->closed_error(false)) return finish(initial, closed, {});
      if (!spun) {  // a short spin before paying for a wake-up
        spun = true;
        bool arrived = false;
        for (int i = 0; i < consumer_spin_checks && !arrived; ++i) {
          cpu_pause();
          arrived = s->ring.front_ready();
        }
        if (arrived) continue;
      }
      // Announce the wait, then look again (Dekker with `notify_consumer`): a publisher that
      // pushed before the announcement is seen by `empty()`, one that pushes after it sees the
      // announcement and signals.
      s->consumer_waiting.store(true, std::memory_order_seq_cst);
      if (s->ring.empty()) {
        if (auto closed = s->closed_error(false)) {
          s->consumer_waiting.store(false, std::memory_order_relaxed);
          return finish(initial, closed, {});
        }
        return s->ready.async_receive(std::move(*this));
      }
      s->consumer_waiting.store(false, std::memory_order_relaxed);
      // Not empty: published, or claimed and about to be. Its publisher may not signal, so take
      // it now, waiting for the write if needed (a drop-oldest publisher may also have taken it:
      // then look again).
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

/**
 * A reader-writer lock whose readers do not share a cache line: each thread counts itself in one
 * of `stripes` padded counters, so concurrent publishers (readers) never contend; a writer
 * (subscribe, unsubscribe, shutdown: rare) raises a flag and waits for every stripe to drain.
 * `pthread_rwlock` would make every publisher do two atomic operations on one shared line.
 */
class striped_shared_mutex {
 public:
  /// Enters as a reader; returns the stripe to pass to `unlock_shared`.
  std::size_t lock_shared() noexcept {
    const std::size_t i = this_thread_stripe();
    for (;;) {
      stripes_[i].readers.fetch_add(1, std::memory_order_seq_cst);
      if (!writer_.load(std::memory_order_seq_cst)) return i;
      stripes_[i].readers.fetch_sub(1, std::memory_order_release);
      std::lock_guard wait_for_writer(writer_mutex_);
    }
  }
  void unlock_shared(std::size_t stripe) noexcept {
    stripes_[stripe].readers.fetch_sub(1, std::memory_order_release);
  }
  void lock() {
    writer_mutex_.lock();
    writer_.store(true, std::memory_order_seq_cst);
    for (auto& s : stripes_) {
      detail::backoff b;
      while (s.readers.load(std::memory_order_acquire) != 0) b.snooze();
    }
  }
  void unlock() {
    writer_.store(false, std::memory_order_release);
    writer_mutex_.unlock();
  }

 private:
  static constexpr std::size_t stripes = 16;
  static std::size_t this_thread_stripe() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed) % stripes;
    return mine;
  }
  struct alignas(128) stripe {
    std::atomic<std::size_t> readers{0};
  };
  stripe stripes_[stripes];
  std::atomic<bool> writer_{false};
  std::mutex writer_mutex_;
};

/// RAII reader of a `striped_shared_mutex`.
class shared_guard {
 public:
  explicit shared_guard(striped_shared_mutex& m) noexcept : m_(m), stripe_(m.lock_shared()) {}
  ~shared_guard() { m_.unlock_shared(stripe_); }
  shared_guard(const shared_guard&) = delete;
  shared_guard& operator=(const shared_guard&) = delete;

 private:
  striped_shared_mutex& m_;
  std::size_t stripe_;
};

/// Each publishing thread remembers its last lookup: a publisher usually sends to one address
/// many times. Valid only for that bus and routing generation, and only read under the bus's
/// shared lock, which keeps the vector alive.
struct route_cache {
  std::uint64_t bus = 0;
  std::uint64_t generation = 0;
  std::string address;
  const std::vector<sub_ptr>* subs = nullptr;
};
thread_local route_cache last_route;

/// FNV-1a, inline: addresses are short, and `std::hash`'s out-of-line murmur costs more than the
/// rest of the lookup.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    std::uint64_t h = 14695981039346656037ull;
    for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

}  // namespace

namespace detail {

struct channel_bus_core : std::enable_shared_from_this<channel_bus_core> {
  struct pending_request {
    request_handler_t handler;
    clock::timer_id timer = 0;
    bool has_timer = false;
    std::string address{};  // for the timeout record; set only when `warn` is logged
    std::string event{};
  };

  channel_bus_core(event_bus::executor_type ex, xsn::clock& clk)
      : executor(std::move(ex)), log(component_logger("xsn.bus")), clock_(&clk) {}

  const event_bus::executor_type executor;
  const std::shared_ptr<spdlog::logger> log;  // `xsn.bus`
  std::atomic<bool> closed{false};
  std::atomic<std::uint64_t> next_sub_id{1};
  std::atomic<std::uint64_t> next_correlation{1};
  std::atomic<std::uint64_t> unroutable{0};

  mutable striped_shared_mutex routes_mutex;
  std::unordered_map<std::string, std::vector<sub_ptr>, string_hash, std::equal_to<>> routes;
  std::uint64_t routes_generation = 0;  // guarded by routes_mutex; bumped by every change
  std::vector<std::string> patterns;      // guarded by routes_mutex: subscribed addresses ending in `*`
  const std::uint64_t bus_id = next_bus_id();

  static std::uint64_t next_bus_id() noexcept {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  mutable std::mutex req_mutex;
  xsn::clock* clock_;  // guarded by req_mutex; null once the bus is destroyed
  std::unordered_map<std::uint64_t, pending_request> requests;

  // ---- subscriptions ----

  sub_ptr subscribe(std::string_view address, subscription_options options, std::error_code& ec) {
    std::unique_lock lock(routes_mutex);
    if (closed.load(std::memory_order_acquire)) {
      ec = errc::bus_closed;
      return nullptr;
    }
    auto s = std::make_shared<sub_state>(next_sub_id.fetch_add(1, std::memory_order_relaxed),
                                         std::string(address), options, executor, log);
    auto it = routes.find(address);
    if (it == routes.end()) {
      it = routes.emplace(std::string(address), std::vector<sub_ptr>{}).first;
      if (address.back() == '*') patterns.emplace_back(address);
    }
    it->second.push_back(s);
    ++routes_generation;
    lock.unlock();
    if (log->should_log(spdlog::level::info)) {
      log->info("subscribe subscription={} address={} capacity={} policy={}", s->id, field(s->address),
                options.capacity, to_string(options.overflow));
    }
    return s;
  }

  /// The subscriptions of `address`: its own, else those of the longest pattern `prefix*`
  /// that matches it. Called with routes_mutex held.
  const std::vector<sub_ptr>* find_subscriptions(std::string_view address) const {
    if (auto it = routes.find(address); it != routes.end()) return &it->second;
    const std::string* best = nullptr;
    for (const auto& p : patterns)
      if (address.substr(0, p.size() - 1) == std::string_view(p).substr(0, p.size() - 1) &&
          (!best || p.size() > best->size()))
        best = &p;
    if (!best) return nullptr;
    return &routes.find(*best)->second;
  }

  void unsubscribe(const sub_state& s) {
    std::unique_lock lock(routes_mutex);
    auto it = routes.find(s.address);
    if (it == routes.end()) return;
    std::erase_if(it->second, [&](const sub_ptr& p) { return p.get() == &s; });
    if (it->second.empty()) {
      if (s.address.back() == '*') std::erase(patterns, s.address);
      routes.erase(it);
    }
    ++routes_generation;
  }

  // ---- publishing ----

  /// Offers `msg` to every subscription of its address; full `wait` subscriptions are collected
  /// in `waiters` (with their copy of the message) when it is not null.
  std::error_code route(bus_message& msg, std::vector<std::pair<sub_ptr, bus_message>>* waiters) {
    if (closed.load(std::memory_order_acquire)) return errc::bus_closed;
    if (msg.address.front() == '$') return deliver_reply(msg);
    shared_guard lock(routes_mutex);
    route_cache& cache = last_route;
    if (cache.bus != bus_id || cache.generation != routes_generation || cache.address != msg.address) {
      const auto* found = find_subscriptions(msg.address);
      if (!found) {
        unroutable.fetch_add(1, std::memory_order_relaxed);
        if (log->should_log(spdlog::level::debug)) {
          log->debug("unroutable address={} event={}", field(msg.address), field(msg.event.name));
        }
        return errc::no_subscriber;
      }
      cache.bus = bus_id;
      cache.generation = routes_generation;
      cache.address = msg.address;
      cache.subs = found;
    }
    const auto& subs = *cache.subs;
    if (log->should_log(spdlog::level::trace)) [[unlikely]] {
      log->trace("publish address={} event={} subscriptions={}", field(msg.address), field(msg.event.name),
                 subs.size());
    }
    std::error_code first;
    for (std::size_t i = 0, n = subs.size(); i < n; ++i) {
      sub_state& s = *subs[i];
      // The last subscription takes `msg` itself, unless a refusal already happened: then `msg`
      // must stay intact for the caller (`publish` moves from it only on success).
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
            s.on_overflow("waiting", &m.event.name);
            waiters->emplace_back(subs[i], std::move(m));
          } else {
            if (s.opts.overflow == overflow_policy::wait) {
              s.rejected.fetch_add(1, std::memory_order_relaxed);
              s.on_overflow("rejected", &m.event.name);
            }
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
    const std::uint64_t id = msg.correlation_id;
    if (!complete_request(id, {}, std::move(msg), false)) return errc::no_subscriber;
    return {};
  }

  /// Completes request `id` if it is still pending; false when it was not.
  bool complete_request(std::uint64_t id, std::error_code ec, bus_message&& msg, bool from_timer) {
    // Extracted as a node: Boost 1.81's `any_completion_handler` move-assignment recurses forever
    // (it copies its argument as an lvalue into the type-erasing constructor), so handlers are
    // only ever move-constructed here.
    decltype(requests)::node_type node;
    {
      std::lock_guard lock(req_mutex);
      auto it = requests.find(id);
      if (it == requests.end()) return false;
      node = requests.extract(it);
    }
    pending_request& req = node.mapped();
    if (req.has_timer && !from_timer) post_cancel_timer(req.timer);
    if (from_timer && log->should_log(spdlog::level::warn)) {
      log->warn("request_timeout correlation={} address={} event={}", id, field(req.address), field(req.event));
    }
    post_completion(std::move(req.handler), ec, std::move(msg));
    return true;
  }

  void post_completion(request_handler_t h, std::error_code ec, bus_message msg) {
    // The cancellation slot keeps our canceller, which only holds a weak reference and finds no
    // request once this one completed; it is not cleared here because slots may only be touched
    // from the thread that emits on them.
    asio::post(executor, asio::append(std::move(h), ec, std::move(msg)));
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
        post_completion(std::move(h), errc::bus_closed, {});
        return;
      }
      if (slot.is_connected()) {
        slot.assign([w = weak_from_this(), id](asio::cancellation_type) {
          if (auto c = w.lock()) {
            c->complete_request(id, std::make_error_code(std::errc::operation_canceled), {}, false);
          }
        });
      }
      pending_request req{std::move(h)};
      if (log->should_log(spdlog::level::warn)) {
        req.address = msg.address;
        req.event = msg.event.name;
      }
      requests.emplace(id, std::move(req));
    }
    if (auto ec = route(msg, nullptr)) {
      complete_request(id, ec, {}, false);
      return;
    }
    // The clock is only touched on the executor.
    asio::post(executor, [w = weak_from_this(), id, timeout] {
      if (auto c = w.lock()) c->arm_timer(id, timeout);
    });
  }

  void arm_timer(std::uint64_t id, event_bus::duration timeout) {
    std::lock_guard lock(req_mutex);
    if (clock_ == nullptr) return;
    auto it = requests.find(id);
    if (it == requests.end()) return;  // answered already
    it->second.timer = clock_->schedule(clock_->now() + timeout, [w = weak_from_this(), id] {
      if (auto c = w.lock()) c->complete_request(id, errc::request_timeout, {}, true);
    });
    it->second.has_timer = true;
  }

  // ---- health, shutdown ----

  bus_health health() const {
    bus_health h;
    h.running = !closed.load(std::memory_order_acquire);
    h.unroutable = unroutable.load(std::memory_order_relaxed);
    {
      shared_guard lock(routes_mutex);
      h.addresses = routes.size();
      for (const auto& [address, subs] : routes) {
        for (const auto& s : subs) {
          subscription_health sh;
          sh.id = s->id;
          sh.address = s->address;
          sh.overflow = s->opts.overflow;
          sh.capacity = s->opts.capacity;
          sh.backlog = s->ring.size();
          sh.enqueued = s->ring.pushed();
          sh.dropped = s->dropped.load(std::memory_order_relaxed);
          sh.rejected = s->rejected.load(std::memory_order_relaxed);
          sh.waiting_publishers = s->space_waiters.load(std::memory_order_relaxed);
          h.subscriptions.push_back(std::move(sh));
        }
      }
    }
    std::sort(h.subscriptions.begin(), h.subscriptions.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    {
      std::lock_guard lock(req_mutex);
      h.pending_requests = requests.size();
    }
    return h;
  }

  void shutdown() {
    if (closed.exchange(true, std::memory_order_acq_rel)) return;
    std::size_t closed_subs = 0;
    {
      std::unique_lock lock(routes_mutex);
      for (auto& [address, subs] : routes) {
        for (auto& s : subs) s->close(close_reason::shutdown);
        closed_subs += subs.size();
      }
    }
    std::unordered_map<std::uint64_t, pending_request> pending;
    {
      std::lock_guard lock(req_mutex);
      pending.swap(requests);
    }
    if (log->should_log(spdlog::level::info)) {
      log->info("shutdown subscriptions={} pending_requests={} unroutable={}", closed_subs, pending.size(),
                unroutable.load(std::memory_order_relaxed));
    }
    for (auto& [id, req] : pending) {
      if (req.has_timer) post_cancel_timer(req.timer);
      post_completion(std::move(req.handler), errc::bus_closed, {});
    }
  }

  /// The bus is going away: the clock may be destroyed after this, so never touch it again.
  void forget_clock() {
    std::lock_guard lock(req_mutex);
    clock_ = nullptr;
  }
};

}  // namespace detail

namespace {

class channel_subscription final : public subscription {
 public:
  channel_subscription(sub_ptr s, std::weak_ptr<detail::channel_bus_core> core)
      : subscription(s->id, s->address, s->opts), s_(std::move(s)), core_(std::move(core)) {}

  ~channel_subscription() override {
    if (auto c = core_.lock()) c->unsubscribe(*s_);
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

}  // namespace xsn
