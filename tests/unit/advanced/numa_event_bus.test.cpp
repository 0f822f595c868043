// `numa_event_bus` beyond the event_bus contract: shards from a (simulated) topology, pinning,
// batch receive, its ring, and malformed options. The contract itself is in
// tests/contract/event_bus.test.cpp.
#include <xsn/advanced/numa_event_bus.hpp>

#include "catch.hpp"

#include <xsn/advanced/detail/numa_ring.hpp>
#include <xsn/core/clock.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace asio = boost::asio;
using xsn::advanced::numa_event_bus;
using xsn::advanced::numa_subscription_options;
using xsn::advanced::numa_topology;

namespace {

/// Two nodes of one CPU each, as on a small two-socket machine.
numa_topology two_nodes() { return numa_topology{{{0, {0}}, {1, {1}}}}; }

struct fixture {
  explicit fixture(numa_topology t = two_nodes()) : bus(ioc.get_executor(), clk, std::move(t)) {}
  asio::io_context ioc;
  xsn::manual_clock clk;
  numa_event_bus bus;

  std::size_t settle() {
    ioc.restart();
    return ioc.poll();
  }
};

xsn::bus_message msg(const std::string& address, std::int64_t seq) { return {address, xsn::event("e", seq)}; }
std::int64_t seq_of(const xsn::bus_message& m) { return m.event.data.as_int64(); }

numa_subscription_options on_node(int node, std::size_t capacity = 10'000,
                                  xsn::overflow_policy overflow = xsn::overflow_policy::wait) {
  return {.queue = {.capacity = capacity, .overflow = overflow}, .node = node};
}

}  // namespace

TEST_CASE("numa_event_bus: a simulated two-node topology makes one shard per node", "[bus][numa]") {
  fixture f;
  CHECK(f.bus.topology().nodes.size() == 2);
  auto a = f.bus.subscribe_pinned("a", on_node(0));
  auto b = f.bus.subscribe_pinned("b", on_node(1));
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->node() == 0);
  CHECK(b->node() == 1);
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(f.bus.publish(msg("a", i)));
  for (int i = 0; i < 5; ++i) REQUIRE_FALSE(f.bus.publish(msg("b", i)));

  auto shards = f.bus.shards();
  REQUIRE(shards.size() == 2);
  CHECK(shards[0].node == 0);
  CHECK(shards[0].cpus == 1);
  CHECK(shards[0].subscriptions == 1);
  CHECK(shards[0].enqueued == 3);
  CHECK(shards[0].backlog == 3);
  CHECK(shards[1].node == 1);
  CHECK(shards[1].subscriptions == 1);
  CHECK(shards[1].enqueued == 5);
  CHECK(shards[1].backlog == 5);

  // Each subscriber receives from its own node's shard.
  xsn::bus_message m;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(b->try_receive(m));
    CHECK(seq_of(m) == i);
  }
  shards = f.bus.shards();
  CHECK(shards[1].backlog == 0);
  CHECK(shards[0].backlog == 3);
  b.reset();
  CHECK(f.bus.shards()[1].subscriptions == 0);
}

TEST_CASE("numa_event_bus: a publisher writes into every consumer's shard", "[bus][numa]") {
  fixture f;
  auto near = f.bus.subscribe_pinned("topic", on_node(0));
  auto far = f.bus.subscribe_pinned("topic", on_node(1));
  auto pattern = f.bus.subscribe_pinned("machine/*", on_node(1));
  for (int i = 0; i < 10; ++i) REQUIRE_FALSE(f.bus.publish(msg("topic", i)));
  REQUIRE_FALSE(f.bus.publish(msg("machine/7", 99)));
  const auto shards = f.bus.shards();
  CHECK(shards[0].enqueued == 10);
  CHECK(shards[1].enqueued == 11);
  for (auto* s : {near.get(), far.get()}) {
    std::vector<xsn::bus_message> out(16);
    REQUIRE(s->try_receive_batch(out) == 10);
    for (int i = 0; i < 10; ++i) CHECK(seq_of(out[static_cast<std::size_t>(i)]) == i);
  }
  xsn::bus_message m;
  REQUIRE(pattern->try_receive(m));
  CHECK(m.address == "machine/7");
}

TEST_CASE("numa_event_bus: an unpinned subscription goes to the calling thread's node", "[bus][numa]") {
  SECTION("the thread's CPU is in node 1") {
    numa_topology t{{{0, {}}, {1, {}}}};
    for (int cpu = 0; cpu < 4096; ++cpu) t.nodes[1].cpus.push_back(cpu);
    fixture f(std::move(t));
    auto sub = f.bus.subscribe("m");
    auto* numa_sub = dynamic_cast<xsn::advanced::numa_subscription*>(sub.get());
    REQUIRE(numa_sub != nullptr);
    CHECK(numa_sub->node() == 1);
    CHECK(f.bus.subscribe_pinned("n", {})->node() == 1);  // calling_thread_node, spelled as the default
  }
  SECTION("the thread's CPU is in no node: the first node") {
    fixture f(numa_topology{{{3, {100'000}}, {5, {100'001}}}});
    auto sub = f.bus.subscribe_pinned("m", {});
    CHECK(sub->node() == 3);
    CHECK(f.bus.shards()[0].subscriptions == 1);
  }
}

TEST_CASE("numa_event_bus: the machine's topology is valid and has a node", "[bus][numa]") {
  const auto t = numa_topology::detect();
  CHECK_FALSE(t.validate());
  REQUIRE_FALSE(t.nodes.empty());
  CHECK_FALSE(t.nodes[0].cpus.empty());
  asio::io_context ioc;
  xsn::manual_clock clk;
  numa_event_bus bus(ioc.get_executor(), clk);
  CHECK(bus.topology().nodes.size() == t.nodes.size());
  auto sub = bus.subscribe_pinned("m", on_node(t.nodes.back().id, 4096));  // node-local memory
  REQUIRE_FALSE(bus.publish(msg("m", 1)));
  xsn::bus_message m;
  REQUIRE(sub->try_receive(m));
  CHECK(seq_of(m) == 1);
}

TEST_CASE("numa_event_bus: batch receive takes the oldest messages in order, across laps", "[bus][numa]") {
  fixture f;
  auto sub = f.bus.subscribe_pinned("m", on_node(1, 5));
  std::vector<xsn::bus_message> out(3);
  std::int64_t next_published = 0, next_received = 0;
  for (int round = 0; round < 50; ++round) {  // 50 rounds of 4 over a 5-slot ring: many laps
    for (int i = 0; i < 4; ++i) REQUIRE_FALSE(f.bus.publish(msg("m", next_published++)));
    while (std::size_t n = sub->try_receive_batch(out)) {
      for (std::size_t i = 0; i < n; ++i) CHECK(seq_of(out[i]) == next_received++);
    }
  }
  CHECK(next_received == next_published);
  CHECK(sub->try_receive_batch(out) == 0);

  // A batch larger than the queue takes everything; a full queue is taken in one batch.
  for (int i = 0; i < 5; ++i) REQUIRE_FALSE(f.bus.publish(msg("m", i)));
  CHECK(f.bus.publish(msg("m", 5)) == xsn::errc::queue_full);
  std::vector<xsn::bus_message> big(64);
  REQUIRE(sub->try_receive_batch(big) == 5);
  CHECK(seq_of(big[4]) == 4);
  const auto h = f.bus.health();
  CHECK(h.subscriptions.at(0).enqueued == 205);
  CHECK(h.subscriptions.at(0).rejected == 1);
}

TEST_CASE("numa_event_bus: malformed options and topologies are refused with an error", "[bus][numa]") {
  fixture f;
  std::error_code ec;
  CHECK(f.bus.subscribe_pinned("m", on_node(2), ec) == nullptr);  // not in the topology
  CHECK(ec == xsn::errc::invalid_argument);
  CHECK(f.bus.subscribe_pinned("m", on_node(-2), ec) == nullptr);
  CHECK(ec == xsn::errc::invalid_argument);
  CHECK(f.bus.subscribe_pinned("", on_node(0), ec) == nullptr);
  CHECK(ec == xsn::errc::invalid_address);
  CHECK(f.bus.subscribe_pinned("$reply", on_node(0), ec) == nullptr);
  CHECK(ec == xsn::errc::invalid_address);
  CHECK(f.bus.subscribe_pinned("m", on_node(0, 0), ec) == nullptr);
  CHECK(ec == xsn::errc::invalid_argument);
  CHECK(f.bus.subscribe_pinned("m", on_node(0, xsn::subscription_options::max_capacity + 1), ec) == nullptr);
  CHECK(ec == xsn::errc::invalid_argument);
  CHECK_THROWS_AS(f.bus.subscribe_pinned("m", on_node(9)), std::system_error);
  CHECK(f.bus.health().subscriptions.empty());
  CHECK(f.bus.shards()[0].subscriptions == 0);

  auto ok = f.bus.subscribe_pinned("m", on_node(1), ec);
  CHECK(ok);
  CHECK_FALSE(ec);
  f.bus.shutdown();
  CHECK(f.bus.subscribe_pinned("m", on_node(1), ec) == nullptr);
  CHECK(ec == xsn::errc::bus_closed);

  asio::io_context ioc;
  xsn::manual_clock clk;
  auto refused = [&](numa_topology t) {
    CHECK(t.validate() == xsn::errc::invalid_argument);
    CHECK_THROWS_AS(numa_event_bus(ioc.get_executor(), clk, t), std::invalid_argument);
  };
  refused(numa_topology{});                          // no node
  refused(numa_topology{{{0, {0}}, {0, {1}}}});      // a node twice
  refused(numa_topology{{{-1, {0}}}});               // a negative node id
  refused(numa_topology{{{0, {0, 1}}, {1, {1}}}});   // a CPU in two nodes
  refused(numa_topology{{{0, {0, 0}}}});             // a CPU twice
  refused(numa_topology{{{0, {-3}}}});               // a negative CPU id
  CHECK_FALSE(numa_topology{{{4, {}}}}.validate());  // a node without CPUs is allowed
}

TEST_CASE("numa_event_bus: the ring wraps, refuses when full, drops the oldest and frees what is left",
          "[bus][numa]") {
  using ring = xsn::advanced::detail::numa_ring<std::string>;
  auto s = [](int i) { return std::string(40, static_cast<char>('a' + i % 26)); };  // heap strings
  ring r(3, 0);
  CHECK(r.capacity() == 3);
  CHECK(r.empty());
  std::string out[4];
  for (int lap = 0; lap < 10; ++lap) {
    for (int i = 0; i < 3; ++i) {
      std::string v = s(lap * 3 + i);
      REQUIRE(r.try_push(v));
      CHECK(v.empty());  // moved from
    }
    std::string extra = s(99);
    CHECK_FALSE(r.try_push(extra));
    CHECK(extra == s(99));  // untouched
    CHECK(r.size() == 3);
    CHECK(r.front_ready());
    REQUIRE(r.pop_batch(out, 2, false) == 2);
    CHECK(out[0] == s(lap * 3));
    CHECK(out[1] == s(lap * 3 + 1));
    REQUIRE(r.pop_batch(out, 4, true) == 1);
    CHECK(out[0] == s(lap * 3 + 2));
    CHECK(r.pop_batch(out, 4, true) == 0);
  }
  CHECK(r.pushed() == 30);
  CHECK(r.popped() == 30);
  for (int i = 0; i < 5; ++i) {
    std::string v = s(i);
    CHECK(r.force_push(v) == (i >= 3));  // the 4th and 5th push discard the oldest
  }
  REQUIRE(r.pop_batch(out, 1, true) == 1);
  CHECK(out[0] == s(2));
  CHECK(r.size() == 2);
  CHECK(r.popped() == 33);  // two discarded, one received
  // The ring is destroyed with two strings in it: ASan reports a leak if they are not freed.

  ring one(1, 0);  // one slot: "written" and "free for the next lap" must not be confused
  for (int i = 0; i < 5; ++i) {
    std::string v = s(i), w = s(i + 1);
    REQUIRE(one.try_push(v));
    CHECK_FALSE(one.try_push(w));
    CHECK(one.force_push(w));
    REQUIRE(one.pop_batch(out, 4, true) == 1);
    CHECK(out[0] == s(i + 1));
    CHECK(one.empty());
  }
}

TEST_CASE("numa_event_bus: messages for pinned subscriptions wake their consumers", "[bus][numa]") {
  fixture f;
  auto a = f.bus.subscribe_pinned("a", on_node(0, 4));
  auto b = f.bus.subscribe_pinned("b", on_node(1, 4));
  std::vector<std::int64_t> got;
  std::error_code last;
  auto receive = [&](xsn::subscription& s) {
    s.async_receive([&](std::error_code ec, xsn::bus_message m) {
      last = ec;
      if (!ec) got.push_back(seq_of(m));
    });
  };
  receive(*a);
  receive(*b);
  f.settle();
  CHECK(got.empty());
  REQUIRE_FALSE(f.bus.publish(msg("b", 2)));
  f.settle();
  REQUIRE_FALSE(f.bus.publish(msg("a", 1)));
  f.settle();
  CHECK(got == std::vector<std::int64_t>{2, 1});
  receive(*a);
  f.bus.shutdown();
  f.settle();
  CHECK(last == xsn::errc::bus_closed);
}
