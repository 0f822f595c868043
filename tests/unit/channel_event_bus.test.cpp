#include <xsn/bus/channel_event_bus.hpp>

#include "catch.hpp"

#include <xsn/bus/detail/mpmc_ring.hpp>
#include <xsn/core/asio_clock.hpp>
#include <xsn/core/clock.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct harness {
  asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::channel_event_bus bus{ioc.get_executor(), clk};

  void settle() {
    ioc.restart();
    ioc.poll();
  }
};

xsn::bus_message msg(const std::string& address, std::int64_t seq) { return {address, xsn::event("e", seq)}; }

std::int64_t seq_of(const xsn::bus_message& m) { return m.event.data.as_int64(); }

}  // namespace

TEST_CASE("channel_event_bus: ring capacity is exact for any size", "[bus]") {
  for (std::size_t cap : {1u, 2u, 3u, 5u, 7u, 8u, 100u}) {
    xsn::detail::mpmc_ring<xsn::bus_message> ring(cap);
    CHECK(ring.capacity() == cap);
    std::size_t pushed = 0;
    for (std::size_t i = 0; i < cap + 3; ++i) {
      auto m = msg("r", static_cast<std::int64_t>(i));
      if (ring.try_push(m)) ++pushed;
    }
    CHECK(pushed == cap);
    CHECK(ring.size() == cap);
    xsn::bus_message out;
    for (std::size_t i = 0; i < cap; ++i) {
      REQUIRE(ring.try_pop(out));
      CHECK(seq_of(out) == static_cast<std::int64_t>(i));
    }
    CHECK_FALSE(ring.try_pop(out));
    CHECK(ring.empty());
  }
}

TEST_CASE("channel_event_bus: ring keeps order over many laps and drop_oldest keeps the newest", "[bus]") {
  xsn::detail::mpmc_ring<xsn::bus_message> ring(3);
  xsn::bus_message out;
  std::int64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 1000; ++round) {
    for (int k = 0; k < 1 + round % 3; ++k) {
      auto m = msg("r", next_in);
      if (!ring.try_push(m)) break;
      ++next_in;
    }
    while (ring.try_pop(out)) CHECK(seq_of(out) == next_out++);
  }
  CHECK(next_in == next_out);
  CHECK(ring.pushed() == static_cast<std::uint64_t>(next_in));
  CHECK(ring.popped() == static_cast<std::uint64_t>(next_out));

  std::uint64_t dropped = 0;
  for (std::int64_t i = 0; i < 10; ++i) {
    auto m = msg("r", i);
    if (ring.force_push(m)) ++dropped;
  }
  CHECK(dropped == 7);
  for (std::int64_t i = 7; i < 10; ++i) {
    REQUIRE(ring.try_pop(out));
    CHECK(seq_of(out) == i);
  }
  CHECK(ring.empty());
  // Elements left in a ring are destroyed with it (ASan checks the leak).
  auto big = msg("r", 1);
  big.event.name = std::string(200, 'x');
  REQUIRE(ring.try_push(big));
}

TEST_CASE("channel_event_bus: a reply cancels the request's timer", "[bus]") {
  harness h;
  auto service = h.bus.subscribe("service");
  bool done = false;
  h.bus.async_request(msg("service", 1), 1s, [&](std::error_code ec, xsn::bus_message) {
    CHECK_FALSE(ec);
    done = true;
  });
  h.settle();
  CHECK(h.clk.pending() == 1);  // armed on the executor
  xsn::bus_message req;
  REQUIRE(service->try_receive(req));
  REQUIRE_FALSE(h.bus.reply(req, xsn::event("ok")));
  h.settle();
  CHECK(done);
  CHECK(h.clk.pending() == 0);
}

TEST_CASE("channel_event_bus: shutdown cancels request timers and the destructor forgets the clock", "[bus]") {
  asio::io_context ioc;
  xsn::manual_clock clk;
  std::error_code result;
  {
    xsn::channel_event_bus bus(ioc.get_executor(), clk);
    auto service = bus.subscribe("service");
    bus.async_request(msg("service", 1), 1s, [&](std::error_code ec, xsn::bus_message) { result = ec; });
    ioc.poll();
    CHECK(clk.pending() == 1);
    bus.shutdown();
    ioc.restart();
    ioc.poll();
    CHECK(result == xsn::errc::bus_closed);
    CHECK(clk.pending() == 0);
    // A second request would be refused; a timer armed now would never be touched again.
    bus.async_request(msg("service", 2), 1s, [&](std::error_code ec, xsn::bus_message) { result = ec; });
  }
  ioc.restart();
  ioc.poll();  // the bus is gone: its posted work must not touch the clock any more
  CHECK(result == xsn::errc::bus_closed);
}

TEST_CASE("channel_event_bus: unsubscribing while a publisher waits completes it with no_subscriber", "[bus]") {
  harness h;
  auto sub = h.bus.subscribe("m", {.capacity = 1});
  auto other = h.bus.subscribe("m", {.capacity = 10});
  REQUIRE_FALSE(h.bus.publish(msg("m", 1)));
  std::error_code result = xsn::errc::queue_full;
  bool done = false;
  h.bus.async_publish(msg("m", 2), [&](std::error_code ec) {
    done = true;
    result = ec;
  });
  h.settle();
  CHECK_FALSE(done);
  sub.reset();
  h.settle();
  CHECK(done);
  CHECK(result == xsn::errc::no_subscriber);
  // The other subscription got both messages without waiting.
  xsn::bus_message m;
  REQUIRE(other->try_receive(m));
  REQUIRE(other->try_receive(m));
  CHECK(seq_of(m) == 2);
}

TEST_CASE("channel_event_bus: fan-out reports the first refusal and still delivers to the others", "[bus]") {
  harness h;
  auto full = h.bus.subscribe("t", {.capacity = 1, .overflow = xsn::overflow_policy::fail});
  auto roomy = h.bus.subscribe("t");
  REQUIRE_FALSE(h.bus.publish(msg("t", 1)));
  CHECK(h.bus.publish(msg("t", 2)) == xsn::errc::queue_full);
  std::vector<xsn::bus_message> out(4);
  CHECK(roomy->try_receive_batch(out) == 2);
  CHECK(full->try_receive_batch(out) == 1);
}

TEST_CASE("channel_event_bus: a wait-policy publication with several full subscriptions waits for each", "[bus]") {
  harness h;
  auto a = h.bus.subscribe("t", {.capacity = 1});
  auto b = h.bus.subscribe("t", {.capacity = 1});
  REQUIRE_FALSE(h.bus.publish(msg("t", 1)));
  bool done = false;
  h.bus.async_publish(msg("t", 2), [&](std::error_code ec) {
    CHECK_FALSE(ec);
    done = true;
  });
  h.settle();
  xsn::bus_message m;
  REQUIRE(b->try_receive(m));
  h.settle();
  CHECK_FALSE(done);  // still waiting for `a`
  REQUIRE(a->try_receive(m));
  h.settle();
  CHECK(done);
  REQUIRE(a->try_receive(m));
  CHECK(seq_of(m) == 2);
  REQUIRE(b->try_receive(m));
  CHECK(seq_of(m) == 2);
}

TEST_CASE("channel_event_bus: request timeout on the asio_clock in real time", "[bus]") {
  asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  xsn::channel_event_bus bus(ioc.get_executor(), clk);
  auto service = bus.subscribe("service");
  std::error_code result;
  bus.async_request(msg("service", 1), 1ms, [&](std::error_code ec, xsn::bus_message) { result = ec; });
  ioc.run();  // returns once the timer fired and the handler ran
  CHECK(result == xsn::errc::request_timeout);
  CHECK(clk.pending() == 0);
}

TEST_CASE("channel_event_bus: messages carry reply_to and correlation_id untouched by publish", "[bus]") {
  harness h;
  auto sub = h.bus.subscribe("m");
  auto m = msg("m", 1);
  m.reply_to = "client";
  m.correlation_id = 77;
  m.event.sendid = "s1";
  m.event.origin = "o";
  REQUIRE_FALSE(h.bus.publish(m));
  xsn::bus_message got;
  REQUIRE(sub->try_receive(got));
  CHECK(got.reply_to == "client");
  CHECK(got.correlation_id == 77);
  CHECK(got.event.sendid == "s1");
  CHECK(got.event.origin == "o");
}

TEST_CASE("channel_event_bus: event and bus_message moves leave the source empty, copies intact", "[bus]") {
  xsn::bus_message a("addr", xsn::event("name", 5));
  a.event.sendid = std::string(40, 's');
  a.event.invokeid = "inv";
  a.reply_to = "r";
  xsn::bus_message copy = a;
  CHECK(copy.event.sendid == a.event.sendid);
  xsn::bus_message b = std::move(a);
  CHECK(b.address == "addr");
  CHECK(b.event.sendid == std::string(40, 's'));
  CHECK(b.event.invokeid == "inv");
  CHECK(b.reply_to == "r");
  CHECK(a.event.sendid.empty());
  CHECK(a.event.invokeid.empty());
  CHECK(a.reply_to.empty());
  xsn::bus_message c("old", xsn::event("old"));
  c.event.origin = "stale";
  c = std::move(b);
  CHECK(c.address == "addr");
  CHECK(c.event.origin.empty());
  CHECK(c.event.invokeid == "inv");
  CHECK(c.event.data == xsn::value(5));
  c = copy;
  CHECK(c.event.sendid == std::string(40, 's'));
  xsn::event e1("x");
  e1.origin = "o";
  xsn::event e2;
  e2 = std::move(e1);
  CHECK(e2.origin == "o");
  CHECK(e2.name == "x");
}
