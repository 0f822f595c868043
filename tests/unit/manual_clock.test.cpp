#include <xsn/core/clock.hpp>

#include "catch.hpp"

#include <chrono>
#include <functional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using time_point = xsn::clock::time_point;

/// Milliseconds after the manual clock's epoch.
time_point at(std::chrono::milliseconds ms) { return time_point{} + ms; }

}  // namespace

TEST_CASE("manual_clock: starts at its epoch with nothing pending", "[manual_clock]") {
  xsn::manual_clock clk;
  CHECK(clk.now() == time_point{});
  CHECK(clk.pending() == 0);
  CHECK_FALSE(clk.next_due().has_value());
  CHECK_FALSE(clk.fire_next(at(1h)));
  CHECK(clk.now() == time_point{});  // fire_next with nothing due does not move time.
}

TEST_CASE("manual_clock: time moves only when told", "[manual_clock]") {
  xsn::manual_clock clk;
  clk.advance(5ms);
  CHECK(clk.now() == at(5ms));
  clk.advance_to(at(20ms));
  CHECK(clk.now() == at(20ms));
  clk.advance(0ms);
  CHECK(clk.now() == at(20ms));
}

TEST_CASE("manual_clock: timers fire in due order, then in scheduling order", "[manual_clock]") {
  xsn::manual_clock clk;
  std::vector<std::string> order;
  std::vector<time_point> seen_now;
  auto record = [&](std::string name) {
    return [&, name] {
      order.push_back(name);
      seen_now.push_back(clk.now());
    };
  };
  clk.schedule(at(30ms), record("c30"));
  clk.schedule(at(10ms), record("a10"));
  clk.schedule(at(20ms), record("b20"));
  clk.schedule(at(10ms), record("a10-second"));
  CHECK(clk.pending() == 4);
  CHECK(order.empty());  // Never synchronously from `schedule`.

  clk.advance(30ms);

  CHECK(order == std::vector<std::string>{"a10", "a10-second", "b20", "c30"});
  // Each callback sees the time at its own due time.
  CHECK(seen_now == std::vector<time_point>{at(10ms), at(10ms), at(20ms), at(30ms)});
  CHECK(clk.now() == at(30ms));
  CHECK(clk.pending() == 0);
}

TEST_CASE("manual_clock: advance fires only the timers due by then", "[manual_clock]") {
  xsn::manual_clock clk;
  std::vector<int> fired;
  clk.schedule(at(10ms), [&] { fired.push_back(10); });
  clk.schedule(at(20ms), [&] { fired.push_back(20); });
  clk.schedule(at(25ms), [&] { fired.push_back(25); });

  clk.advance(15ms);
  CHECK(fired == std::vector<int>{10});
  CHECK(clk.now() == at(15ms));
  CHECK(clk.pending() == 2);
  REQUIRE(clk.next_due().has_value());
  CHECK(*clk.next_due() == at(20ms));

  clk.advance_to(at(20ms));  // Due exactly at the limit: fires.
  CHECK(fired == std::vector<int>{10, 20});
  CHECK(clk.pending() == 1);
}

TEST_CASE("manual_clock: fire_next fires one timer and moves time to its due time",
          "[manual_clock]") {
  xsn::manual_clock clk;
  std::vector<int> fired;
  clk.schedule(at(10ms), [&] { fired.push_back(10); });
  clk.schedule(at(20ms), [&] { fired.push_back(20); });

  CHECK_FALSE(clk.fire_next(at(5ms)));
  CHECK(fired.empty());

  CHECK(clk.fire_next(at(100ms)));
  CHECK(fired == std::vector<int>{10});
  CHECK(clk.now() == at(10ms));

  CHECK(clk.fire_next(at(20ms)));
  CHECK(fired == std::vector<int>{10, 20});
  CHECK(clk.now() == at(20ms));

  CHECK_FALSE(clk.fire_next(at(100ms)));
}

TEST_CASE("manual_clock: cancel", "[manual_clock]") {
  xsn::manual_clock clk;
  int fired = 0;
  const auto a = clk.schedule(at(10ms), [&] { ++fired; });
  const auto b = clk.schedule(at(20ms), [&] { ++fired; });
  CHECK(a != b);

  CHECK(clk.cancel(a));
  CHECK_FALSE(clk.cancel(a));       // Already cancelled.
  CHECK_FALSE(clk.cancel(a + b + 100));  // Unknown id.
  CHECK(clk.pending() == 1);
  REQUIRE(clk.next_due().has_value());
  CHECK(*clk.next_due() == at(20ms));  // The cancelled timer no longer counts.

  clk.advance(30ms);
  CHECK(fired == 1);
  CHECK_FALSE(clk.cancel(b));  // Already fired.
  CHECK_FALSE(clk.next_due().has_value());
}

TEST_CASE("manual_clock: next_due is the earliest pending timer", "[manual_clock]") {
  xsn::manual_clock clk;
  clk.schedule(at(50ms), [] {});
  REQUIRE(clk.next_due().has_value());
  CHECK(*clk.next_due() == at(50ms));
  clk.schedule(at(40ms), [] {});
  CHECK(*clk.next_due() == at(40ms));
  clk.schedule(at(60ms), [] {});
  CHECK(*clk.next_due() == at(40ms));
}

TEST_CASE("manual_clock: timers scheduled during advance", "[manual_clock]") {
  xsn::manual_clock clk;
  std::vector<std::string> order;

  SECTION("one due within the advanced window fires in the same advance") {
    clk.schedule(at(10ms), [&] {
      order.push_back("first");
      clk.schedule(clk.now() + 5ms, [&] {
        order.push_back("inside");
        CHECK(clk.now() == at(15ms));
      });
      clk.schedule(clk.now() + 50ms, [&] { order.push_back("outside"); });
    });
    clk.advance_to(at(30ms));
    CHECK(order == std::vector<std::string>{"first", "inside"});
    CHECK(clk.now() == at(30ms));
    CHECK(clk.pending() == 1);
    REQUIRE(clk.next_due().has_value());
    CHECK(*clk.next_due() == at(60ms));

    clk.advance(30ms);
    CHECK(order == std::vector<std::string>{"first", "inside", "outside"});
  }

  SECTION("one due at the current time fires after those scheduled before it") {
    clk.schedule(at(10ms), [&] {
      order.push_back("a");
      clk.schedule(clk.now(), [&] { order.push_back("c"); });
    });
    clk.schedule(at(10ms), [&] { order.push_back("b"); });
    clk.advance(10ms);
    CHECK(order == std::vector<std::string>{"a", "b", "c"});
    CHECK(clk.pending() == 0);
  }

  SECTION("a chain that keeps scheduling stops at the window's end") {
    std::function<void()> tick = [&] {
      order.push_back("tick");
      clk.schedule(clk.now() + 10ms, tick);
    };
    clk.schedule(at(10ms), tick);
    clk.advance(35ms);  // Ticks at 10, 20, 30; the one at 40 waits.
    CHECK(order.size() == 3);
    CHECK(clk.pending() == 1);
    CHECK(*clk.next_due() == at(40ms));
  }

  SECTION("a callback may cancel a later timer of the same advance") {
    xsn::clock::timer_id later = 0;
    clk.schedule(at(10ms), [&] {
      order.push_back("canceller");
      CHECK(clk.cancel(later));
    });
    later = clk.schedule(at(20ms), [&] { order.push_back("later"); });
    clk.advance(30ms);
    CHECK(order == std::vector<std::string>{"canceller"});
    CHECK(clk.pending() == 0);
  }
}

TEST_CASE("manual_clock: a timer scheduled in the past fires on the next advance without "
          "moving time back",
          "[manual_clock]") {
  xsn::manual_clock clk;
  clk.advance(100ms);
  int fired = 0;
  clk.schedule(at(50ms), [&] { ++fired; });
  clk.advance(0ms);
  CHECK(fired == 1);
  CHECK(clk.now() == at(100ms));
}

TEST_CASE("manual_clock: saturating_add stops at the end of time instead of overflowing", "[manual_clock]") {
  using xsn::clock;
  constexpr auto end = clock::time_point::max();
  CHECK(xsn::saturating_add(at(1000ms), 500ms) == at(1500ms));
  CHECK(xsn::saturating_add(at(1000ms), -500ms) == at(500ms));
  CHECK(xsn::saturating_add(at(1000ms), clock::duration::max()) == end);
  CHECK(xsn::saturating_add(end - 1ms, 1ms) == end);
  CHECK(xsn::saturating_add(end - 1ms, 2ms) == end);
  CHECK(xsn::saturating_add(end, 1ns) == end);
  STATIC_REQUIRE(xsn::saturating_add(time_point{}, 1ns) == time_point{} + 1ns);
}
