#pragma once
/// \file The default `event_bus`: in-process, on Boost.Asio concurrent channels.
#include <xsn/bus/event_bus.hpp>
#include <xsn/core/clock.hpp>

#include <memory>

namespace xsn::inline v0 {
namespace detail {
struct channel_bus_core;  // Routing, requests; shared with subscriptions and pending operations.
}  // namespace detail

/**
 * An in-process `event_bus`. Each subscription owns a bounded lock-free ring of messages (many
 * publishers, one consumer) and two `boost::asio::experimental::concurrent_channel`s used as
 * signals: a consumer waiting on an empty queue waits on the first, publishers waiting for room
 * (`overflow_policy::wait`) wait on the second. Publishing therefore costs no channel operation
 * while the consumer is busy, and the waits keep Asio's semantics: completion tokens,
 * per-operation cancellation slots, closing on `shutdown`.
 *
 * Guarantees, beyond those of `event_bus`:
 * - `publish` never blocks. With the message moved in, one subscription on the address and its
 *   consumer busy (not waiting), it allocates nothing and makes no system call; several
 *   subscriptions get copies.
 * - Memory: each subscription allocates `capacity` slots of 320 bytes (five cache lines) up
 *   front; the default capacity of 10,000 costs about 3 MB per subscription. A message whose
 *   `sendid`, `origin`, `origintype`, `invokeid` and `reply_to` are empty is stored in the first
 *   two lines of its slot, so only those travel from the publisher's core to the consumer's.
 * - Consuming with `async_wait` + `try_receive_batch` moves messages without any channel or
 *   executor operation while the queue is non-empty; `async_receive` posts one handler per message.
 * - `async_publish` on a full `wait` subscription waits on its channel; waiting publishers are
 *   woken in FIFO order as the consumer makes room. Other subscriptions of the address have
 *   already received the message by then.
 * - Replies travel to the inbox `$reply`; a reply to a request that has completed is refused
 *   with `errc::no_subscriber`.
 * - Logging (`xsn/core/logging.hpp`, logger `xsn.bus`): subscribe, unsubscribe and shutdown
 *   at `info`; the first refusal or drop of an overflow episode at `warn` (`info` when publishers
 *   only wait for room) and its end, when the consumer makes room, at `info`; request timeouts at
 *   `warn`; each drop, refusal and unroutable publication at `debug`; each publication and each
 *   batch received at `trace`. With logging off a publication pays one relaxed load for it.
 *
 * Threading as `event_bus`: any member from any thread. Handlers, the clock's timers for request
 * timeouts, and timer cancellations run on the executor given at construction.
 */
class channel_event_bus final : public event_bus {
 public:
  /// A bus whose handlers and request timers run on `ex`; timeouts are measured by `clk`.
  channel_event_bus(executor_type ex, xsn::clock& clk);
  /// Shuts the bus down.
  ~channel_event_bus() override;

 protected:
  std::unique_ptr<subscription> do_subscribe(std::string_view address, subscription_options options,
                                             std::error_code& ec) override;
  std::error_code do_publish(bus_message&& msg) override;
  void do_async_publish(bus_message&& msg, publish_handler handler) override;
  void do_async_request(bus_message&& msg, duration timeout, request_handler handler) override;
  bus_health do_health() const override;
  void do_shutdown() override;

 private:
  std::shared_ptr<detail::channel_bus_core> core_;
};

}  // namespace xsn::inline v0
