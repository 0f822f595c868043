#pragma once
/// \file The event bus interface: events to a machine's address or a topic, request/reply.
///
/// Guarantees every implementation keeps (the contract suite `tests/contract/event_bus.test.cpp`
/// checks them):
///
/// - **Addresses.** An address is a non-empty string. Every subscription of an address receives
///   every message published to it: a machine's address normally has one subscription (its
///   session), a topic has several. Addresses starting with `$` belong to the bus (reply inboxes):
///   they cannot be subscribed to. A subscription to a pattern `prefix*` receives the messages
///   of every address that starts with `prefix` and has no subscription of its own (the longest
///   matching pattern wins; the message keeps its full address), so one subscriber can serve many
///   addresses, e.g. an orchestrator's `machine/*`.
/// - **Bounded.** Each subscription holds at most `subscription_options::capacity` messages. What
///   a full subscription does is its `overflow_policy`; nothing grows without bound.
/// - **Ordering.** Per subscription, FIFO in publication order: when the publication of `a`
///   happens before the publication of `b` (`publish` returned, or `async_publish` completed,
///   before `b` was published, e.g. both from one thread or one coroutine), a subscription that
///   receives both receives `a` first. Publications that race (several threads, or an
///   `async_publish` still waiting for room) are ordered in some interleaving.
/// - **Fan-out is per subscription.** A publication is offered to each subscription of the address
///   independently; one full subscription does not stop delivery to the others, and the error
///   reported is the first refusal.
/// - **Completion.** Asynchronous operations never complete inside the initiating function; their
///   handlers run on the handler's associated executor (by default the bus's executor). Every
///   operation completes exactly once: with a result, an error, `std::errc::operation_canceled`
///   (per-operation cancellation slot, or `subscription::cancel`), or `errc::bus_closed`
///   (`shutdown`). Nothing is detached: `shutdown()` completes every pending operation.
/// - **Time.** Request timeouts go through the `xsn::clock` given to the bus (tests drive a
///   `manual_clock`).
/// - **Errors** are `std::error_code`s: `xsn::errc` (`invalid_address`, `no_subscriber`,
///   `queue_full`, `request_timeout`, `bus_closed`, `invalid_argument`) or `std::errc`
///   (`operation_canceled`, `operation_in_progress`).
///
/// Completion signatures use `std::error_code`, so `use_future` and `use_awaitable` yield the
/// error code (or a `std::tuple<std::error_code, bus_message>`) instead of throwing:
/// `auto [ec, msg] = co_await sub->async_receive(boost::asio::use_awaitable);`.
#include <xsn/core/errors.hpp>
#include <xsn/core/event.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace xsn::inline v0 {

/// A message on the bus: an event addressed to a machine or a topic.
struct bus_message {
  std::string address;             ///< Where it goes; never empty.
  xsn::event event;                ///< What is delivered.
  std::string reply_to;            ///< Where a reply goes; empty when none (set by `async_request`).
  std::uint64_t correlation_id = 0;  ///< Pairs a reply with its request; 0 when none.
  /// Who sent it, for exactly-once delivery (an orchestrated machine's id); empty when unknown.
  std::string sender;
  /// The sender's sequence number of this message (increasing per sender); 0 when none. A
  /// receiver that remembers the highest sequence it applied per sender drops repeats.
  std::uint64_t sequence = 0;

  bus_message() = default;
  /// A message carrying `ev` to `addr`.
  bus_message(std::string addr, xsn::event ev) : address(std::move(addr)), event(std::move(ev)) {}

  /// Copies every field.
  bus_message(const bus_message&) = default;
  /// Copies every field.
  bus_message& operator=(const bus_message&) = default;
  /// Moves every field (empty strings cheaply, as `xsn::event` does).
  bus_message(bus_message&& o) noexcept
      : address(std::move(o.address)), event(std::move(o.event)),
        reply_to(xsn::event::take(o.reply_to)), correlation_id(o.correlation_id),
        sender(xsn::event::take(o.sender)), sequence(o.sequence) {}
  /// Moves every field.
  bus_message& operator=(bus_message&& o) noexcept(std::is_nothrow_move_assignable_v<xsn::event>) {
    address = std::move(o.address);
    event = std::move(o.event);
    xsn::event::assign(reply_to, o.reply_to);
    correlation_id = o.correlation_id;
    xsn::event::assign(sender, o.sender);
    sequence = o.sequence;
    return *this;
  }
  ~bus_message() = default;
};

/// What a full subscription does with one more message.
enum class overflow_policy : std::uint8_t {
  /// Backpressure: `async_publish` waits until the consumer makes room; `publish`, which cannot
  /// wait, fails with `errc::queue_full` when the queue is full or publishers already wait for
  /// room (so it does not overtake them). Waiting publishers are woken in FIFO order as room
  /// appears (a publication racing with the wake-up may take the room first). Nothing is lost.
  wait,
  /// The oldest queued message is discarded to make room (counted in `dropped`); publishing
  /// never fails for lack of room.
  drop_oldest,
  /// `publish` and `async_publish` fail at once with `errc::queue_full` (counted in `rejected`).
  fail,
};

/// How a subscription queues messages.
struct subscription_options {
  /// Largest accepted `capacity` (2^24).
  static constexpr std::size_t max_capacity = std::size_t{1} << 24;
  std::size_t capacity = 10'000;                 ///< Most messages queued at once; 1 to `max_capacity`.
  overflow_policy overflow = overflow_policy::wait;  ///< What a full queue does.
};

/// One subscription's state, as `event_bus::health` reports it.
struct subscription_health {
  std::uint64_t id = 0;                      ///< `subscription::id()`.
  std::string address;                       ///< What it is subscribed to.
  overflow_policy overflow = overflow_policy::wait;  ///< Its policy.
  std::size_t capacity = 0;                  ///< Its bound.
  std::size_t backlog = 0;                   ///< Messages queued, not yet received.
  std::uint64_t enqueued = 0;                ///< Messages ever queued (received + backlog + dropped).
  std::uint64_t dropped = 0;                 ///< Discarded by `drop_oldest`.
  std::uint64_t rejected = 0;                ///< Refused with `queue_full` (`fail`, or `wait` via `publish`).
  std::size_t waiting_publishers = 0;        ///< `async_publish` operations waiting for room.
};

/// A structured snapshot of the bus; counters are read without stopping publishers, so a report
/// taken under load is consistent per counter, not across counters.
struct bus_health {
  bool running = false;                      ///< False once `shutdown` was called.
  std::size_t addresses = 0;                 ///< Addresses with at least one subscription.
  std::size_t pending_requests = 0;          ///< `async_request` operations awaiting a reply.
  std::uint64_t unroutable = 0;              ///< Publications refused with `no_subscriber`.
  std::vector<subscription_health> subscriptions;  ///< One entry per live subscription, by id.
};

/**
 * The receiving end of a subscription: a bounded queue of messages for one address.
 *
 * Threading: one consumer at a time, as with a socket. `try_receive`, `try_receive_batch`,
 * `async_receive` and `async_wait` must not run concurrently with each other, and at most one
 * `async_receive`/`async_wait` may be pending (another fails with
 * `std::errc::operation_in_progress`). `cancel()` may be called from any thread. Destroying the
 * subscription unsubscribes it: a pending operation completes with `operation_canceled` and
 * messages still queued are discarded. After `event_bus::shutdown`, queued messages can still be
 * received; once the queue is empty, receiving fails with `errc::bus_closed`.
 */
class subscription {
 public:
  virtual ~subscription();
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

  /// The address subscribed to.
  const std::string& address() const noexcept { return address_; }
  /// The options it was created with (capacity normalised).
  const subscription_options& options() const noexcept { return options_; }
  /// Unique within its bus; matches `subscription_health::id`.
  std::uint64_t id() const noexcept { return id_; }

  /// Takes the oldest queued message into `out`; false (and `out` untouched) when none is queued.
  bool try_receive(bus_message& out) { return do_try_receive(std::span<bus_message>(&out, 1)) == 1; }
  /// Moves up to `out.size()` queued messages, oldest first, into `out`; returns how many.
  std::size_t try_receive_batch(std::span<bus_message> out) { return out.empty() ? 0 : do_try_receive(out); }

  /// Receives the oldest message, waiting for one when the queue is empty.
  /// Completion signature: void(std::error_code, bus_message)
  template <boost::asio::completion_token_for<void(std::error_code, bus_message)> CompletionToken>
  auto async_receive(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, bus_message)>(
        [this](auto handler) { do_async_receive(std::move(handler)); }, token);
  }

  /**
   * Completes when at least one message is queued (or at once if one is), without taking it:
   * the fast way to consume is `async_wait` then `try_receive_batch` until it returns 0.
   * Completion signature: void(std::error_code)
   */
  template <boost::asio::completion_token_for<void(std::error_code)> CompletionToken>
  auto async_wait(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this](auto handler) { do_async_wait(std::move(handler)); }, token);
  }

  /// Completes a pending `async_receive`/`async_wait` with `std::errc::operation_canceled`.
  /// Thread-safe; does nothing when none is pending.
  void cancel() { do_cancel(); }

 protected:
  /// Handler of `async_receive`.
  using receive_handler = boost::asio::any_completion_handler<void(std::error_code, bus_message)>;
  /// Handler of `async_wait`.
  using wait_handler = boost::asio::any_completion_handler<void(std::error_code)>;

  /// Records what every subscription reports about itself.
  subscription(std::uint64_t id, std::string address, subscription_options options)
      : address_(std::move(address)), options_(options), id_(id) {}

  /// Moves up to `out.size()` (at least 1) messages into `out`; returns how many.
  virtual std::size_t do_try_receive(std::span<bus_message> out) = 0;
  /// Starts `async_receive`.
  virtual void do_async_receive(receive_handler handler) = 0;
  /// Starts `async_wait`.
  virtual void do_async_wait(wait_handler handler) = 0;
  /// Implements `cancel`.
  virtual void do_cancel() = 0;

 private:
  std::string address_;
  subscription_options options_;
  std::uint64_t id_;
};

/**
 * Delivers `bus_message`s to subscriptions by address, with bounded queues, backpressure and
 * request/reply.
 *
 * Threading: every member function may be called from any thread, concurrently. The bus never
 * starts threads: its handlers run on the executor given to the implementation, which must also
 * be where the `xsn::clock` may be called (a single-threaded `io_context` or a strand; with a
 * `manual_clock`, the thread that advances it). Lifetime: destroy the bus (which shuts it down)
 * before its clock and its execution context; subscriptions may outlive the bus.
 *
 * The public functions validate their arguments and then call the protected `do_*` hooks, so
 * every implementation reports malformed input the same way.
 */
class event_bus {
 public:
  /// The executor handlers run on by default.
  using executor_type = boost::asio::any_io_executor;
  /// Request timeouts.
  using duration = std::chrono::nanoseconds;

  virtual ~event_bus();
  event_bus(const event_bus&) = delete;
  event_bus& operator=(const event_bus&) = delete;

  /// The executor handlers run on by default.
  const executor_type& get_executor() const noexcept { return executor_; }

  /**
   * Subscribes to `address`. Fails with `errc::invalid_address` (empty, or starting with `$`),
   * `errc::invalid_argument` (capacity 0 or above `max_capacity`) or `errc::bus_closed`; returns null then.
   */
  std::unique_ptr<subscription> subscribe(std::string_view address, subscription_options options,
                                          std::error_code& ec);
  /// As above, throwing `std::system_error` on failure.
  std::unique_ptr<subscription> subscribe(std::string_view address, subscription_options options = {});

  /**
   * Publishes without waiting: queues `msg` on every subscription of `msg.address`.
   * Returns `errc::invalid_address`, `errc::no_subscriber`, `errc::queue_full` (a `fail` or
   * `wait` subscription was full; the others got the message) or `errc::bus_closed`.
   * `msg` is moved from only on success: after an error it is intact, so a publisher can retry,
   * e.g. `if (bus.publish(std::move(m)) == errc::queue_full) bus.async_publish(std::move(m), tok);`.
   */
  std::error_code publish(bus_message&& msg);
  /// As above, publishing a copy of `msg`.
  std::error_code publish(const bus_message& msg) { return publish(bus_message(msg)); }

  /**
   * Publishes, waiting for room in `wait` subscriptions that are full (backpressure). Completes
   * once `msg` is queued on every subscription, or with the errors of `publish`, or
   * `std::errc::operation_canceled` (the message was then queued on no subscription still
   * waiting for room).
   * Completion signature: void(std::error_code)
   */
  template <boost::asio::completion_token_for<void(std::error_code)> CompletionToken>
  auto async_publish(bus_message msg, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this](auto handler, bus_message m) {
          if (auto ec = check_address(m.address)) return fail(std::move(handler), ec);
          do_async_publish(std::move(m), std::move(handler));
        },
        token, std::move(msg));
  }

  /**
   * Publishes `msg` as a request and completes with the first reply. Sets `msg.reply_to` to a
   * reply inbox of the bus and `msg.correlation_id` to a fresh id (overwriting both); the
   * responder answers with `reply`. Publishing is non-blocking (as `publish`). Fails with the
   * errors of `publish`, `errc::request_timeout` when no reply came within `timeout` (measured
   * by the bus's clock), `operation_canceled` or `bus_closed`.
   * Completion signature: void(std::error_code, bus_message)
   */
  template <boost::asio::completion_token_for<void(std::error_code, bus_message)> CompletionToken>
  auto async_request(bus_message msg, duration timeout, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, bus_message)>(
        [this](auto handler, bus_message m, duration t) {
          if (auto ec = check_address(m.address)) return fail(std::move(handler), ec, bus_message{});
          do_async_request(std::move(m), t, std::move(handler));
        },
        token, std::move(msg), timeout);
  }

  /**
   * Answers `request` (a message received from `async_request`) with `ev`: the requester's
   * operation completes with a `bus_message` carrying `ev` and the request's correlation id.
   * Returns `errc::invalid_address` (the request has no `reply_to`/`correlation_id`),
   * `errc::no_subscriber` (nobody waits for it any more: answered, timed out or cancelled) or
   * `errc::bus_closed`.
   */
  std::error_code reply(const bus_message& request, xsn::event ev);

  /// A snapshot of subscriptions, backlogs and counters.
  bus_health health() const { return do_health(); }

  /**
   * Stops the bus: later publications and subscriptions fail with `errc::bus_closed`, and every
   * pending operation (receives, waits, publishers waiting for room, requests) completes with
   * `errc::bus_closed`. Queued messages stay receivable. Idempotent; any thread.
   */
  void shutdown() { do_shutdown(); }

 protected:
  /// Handler of `async_publish`.
  using publish_handler = boost::asio::any_completion_handler<void(std::error_code)>;
  /// Handler of `async_request`.
  using request_handler = boost::asio::any_completion_handler<void(std::error_code, bus_message)>;

  /// A bus whose handlers run on `ex` by default.
  explicit event_bus(executor_type ex) : executor_(std::move(ex)) {}

  /// `errc::invalid_address` when `address` is empty.
  static std::error_code check_address(std::string_view address) noexcept;

  /// Completes `handler` with `args` through the executor, never inline.
  template <class Handler, class... Args>
  void fail(Handler handler, Args... args) {
    boost::asio::post(executor_, boost::asio::append(std::move(handler), std::move(args)...));
  }

  /// Creates a subscription; `address` and `options` are already valid.
  virtual std::unique_ptr<subscription> do_subscribe(std::string_view address,
                                                     subscription_options options,
                                                     std::error_code& ec) = 0;
  /// Implements `publish` (and delivers replies, whose address starts with `$`); the address is
  /// non-empty. Moves from `msg` only on success.
  virtual std::error_code do_publish(bus_message&& msg) = 0;
  /// Implements `async_publish`; the address is non-empty.
  virtual void do_async_publish(bus_message&& msg, publish_handler handler) = 0;
  /// Implements `async_request`; the address is non-empty.
  virtual void do_async_request(bus_message&& msg, duration timeout, request_handler handler) = 0;
  /// Implements `health`.
  virtual bus_health do_health() const = 0;
  /// Implements `shutdown`; must be idempotent.
  virtual void do_shutdown() = 0;

 private:
  executor_type executor_;
};

}  // namespace xsn::inline v0
