#pragma once
/// \file `xsn::advanced::numa_event_bus`: the `event_bus` contract on lock-free rings, one shard
/// per NUMA node.
#include <xsn/bus/event_bus.hpp>
#include <xsn/core/clock.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace xsn::inline v0::advanced {

namespace detail {
struct numa_bus_core;  // Routing, shards, requests; shared with subscriptions and operations.
}  // namespace detail

/// One NUMA node: its id (as libnuma numbers it) and the CPUs that belong to it.
struct numa_node {
  int id = 0;             ///< Node id, >= 0, unique in a topology.
  std::vector<int> cpus;  ///< CPU ids (as `sched_getcpu` numbers them), unique across the topology.
};

/// The machine's NUMA layout as the bus sees it; injectable, so tests can simulate nodes.
struct numa_topology {
  std::vector<numa_node> nodes;  ///< At least one; the bus makes one shard per entry.

  /// The machine's layout from libnuma: every node with CPUs. One node holding every CPU when
  /// the kernel or the machine has no NUMA (`numa_available() < 0`).
  static numa_topology detect();
  /// `errc::invalid_argument` unless there is at least one node, node ids are >= 0 and unique,
  /// and CPU ids are >= 0 and belong to one node only.
  std::error_code validate() const;
  /// The index in `nodes` of the node holding `cpu`; -1 when none does.
  int index_of_cpu(int cpu) const noexcept;
  /// The index in `nodes` of node id `node`; -1 when there is none.
  int index_of_node(int node) const noexcept;
};

/// How `numa_event_bus::subscribe_pinned` queues messages and where.
struct numa_subscription_options {
  /// `node` meaning "the node of the CPU the subscribing thread runs on" (the first node when
  /// that CPU is in no node of the topology).
  static constexpr int calling_thread_node = -1;
  subscription_options queue{};       ///< Capacity and overflow policy, as for any bus.
  int node = calling_thread_node;     ///< The node id whose shard holds the queue.
};

/// A subscription of a `numa_event_bus`: also tells which node's shard holds its queue.
class numa_subscription : public subscription {
 public:
  ~numa_subscription() override;
  /// The node id whose shard holds the queue; consume from a thread running on it.
  int node() const noexcept { return node_; }

 protected:
  /// Records the node besides what every subscription records.
  numa_subscription(std::uint64_t id, std::string address, subscription_options options, int node)
      : subscription(id, std::move(address), options), node_(node) {}

 private:
  int node_;
};

/// One shard of the bus, as `numa_event_bus::shards` reports it.
struct numa_shard_health {
  int node = 0;                ///< Node id.
  std::size_t cpus = 0;        ///< CPUs of the node in the topology.
  std::size_t subscriptions = 0;  ///< Live subscriptions whose queue is in this shard.
  std::size_t backlog = 0;     ///< Messages queued in them.
  std::uint64_t enqueued = 0;  ///< Messages ever queued in them (received + backlog + dropped).
};

/**
 * An `event_bus` whose subscriptions queue messages in bounded lock-free rings (batch dequeue,
 * cache-line padded slots and indices), grouped in one shard per NUMA node. A subscription
 * belongs to one node's shard: its ring is allocated in that node's memory (libnuma, when the
 * machine has the node), a publisher writes straight into it, and its consumer, running on that
 * node, reads node-local memory.
 *
 * The ring, the packed slot and the routing are the channel bus's (`xsn/bus/detail/mpmc_ring.hpp`,
 * `xsn/bus/detail/packed_message.hpp`, `xsn/bus/detail/bus_router.hpp`): each subscription allocates
 * `capacity` slots of 320 bytes up front (about 3 MB for the default 10,000), and a message whose
 * `sendid`, `origin`, `origintype`, `invokeid` and `reply_to` are empty travels in the first two
 * cache lines of its slot. With one subscription on the address and its consumer busy, `publish`
 * takes no lock and makes no system call.
 *
 * Same guarantees as `event_bus` and the same behaviour as `xsn::channel_event_bus` (overflow
 * policies, FIFO per subscription in publication order, fan-out per subscription, `$reply`
 * inbox, health, shutdown completing everything). Differences:
 * - Waiting is done without channels: a consumer announces a wait (Dekker handshake with the
 *   publishers, on sequentially consistent atomics), and only then does a publisher take the
 *   subscription's small mutex to wake it; a full `wait` subscription keeps its waiting
 *   publishers in FIFO order and the consumer moves their messages into the ring itself as it
 *   makes room, so waiters are never overtaken and need no retry.
 * - `subscribe` (the interface's) places the queue on the node of the calling thread's CPU;
 *   `subscribe_pinned` names the node.
 *
 * The bus never pins threads: run the consumer of a pinned subscription on a CPU of its node
 * (`numa_topology::nodes[i].cpus`). Switching from the core default is one line:
 * `std::unique_ptr<xsn::event_bus> bus = std::make_unique<xsn::advanced::numa_event_bus>(ex, clock);`
 */
class numa_event_bus final : public event_bus {
 public:
  /// A bus on the machine's topology (`numa_topology::detect()`).
  numa_event_bus(executor_type ex, xsn::clock& clk);
  /// A bus on `topology`; throws `std::invalid_argument` when `topology.validate()` fails.
  numa_event_bus(executor_type ex, xsn::clock& clk, numa_topology topology);
  /// Shuts the bus down.
  ~numa_event_bus() override;

  using event_bus::subscribe;

  /**
   * Subscribes with the queue in node `options.node`'s shard. Fails as `subscribe` does, and with
   * `errc::invalid_argument` when the node is not in the topology; returns null then.
   */
  std::unique_ptr<numa_subscription> subscribe_pinned(std::string_view address,
                                                      const numa_subscription_options& options,
                                                      std::error_code& ec);
  /// As above, throwing `std::system_error` on failure.
  std::unique_ptr<numa_subscription> subscribe_pinned(std::string_view address,
                                                      const numa_subscription_options& options);

  /// The topology the shards follow.
  const numa_topology& topology() const noexcept;
  /// One entry per shard, in topology order.
  std::vector<numa_shard_health> shards() const;

 protected:
  std::unique_ptr<subscription> do_subscribe(std::string_view address, subscription_options options,
                                             std::error_code& ec) override;
  std::error_code do_publish(bus_message&& msg) override;
  void do_async_publish(bus_message&& msg, publish_handler handler) override;
  void do_async_request(bus_message&& msg, duration timeout, request_handler handler) override;
  bus_health do_health() const override;
  void do_shutdown() override;

 private:
  std::shared_ptr<detail::numa_bus_core> core_;
};

}  // namespace xsn::inline v0::advanced
