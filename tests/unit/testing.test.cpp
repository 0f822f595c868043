#include <xsn/testing.hpp>

#include "catch.hpp"
#include "names.hpp"

#include <xsn/parse/xstate.hpp>

#include <boost/asio/post.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using time_point = xsn::clock::time_point;

/// Milliseconds since the clock's 0.
long long ms_of(time_point t) { return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count(); }

/// Records timer `name` firing (with the virtual time it saw) and posts a handler that records
/// `name` running on the executor, so the log shows whether the driver settled after each timer.
struct recorder {
  xsn::testing::driver& t;
  std::vector<std::string> log;
  std::function<void()> timer(const std::string& name) {
    return [this, name] {
      log.push_back(name + "@" + std::to_string(ms_of(t.clock().now())));
      boost::asio::post(t.executor(), [this, name] { log.push_back(name + " ran"); });
    };
  }
  void at(long long ms, const std::string& name) { t.clock().schedule(time_point{} + std::chrono::milliseconds(ms), timer(name)); }
};

}  // namespace

TEST_CASE("testing: settle runs work posted after a settle that found none", "[testing]") {
  // The pitfall: poll() on an io_context with no work stops it; later polls run nothing until
  // restart(). The driver's settle restarts every time.
  xsn::testing::driver t;
  CHECK(t.settle() == 0);
  int runs = 0;
  boost::asio::post(t.executor(), [&] { ++runs; });
  CHECK(t.settle() == 1);
  CHECK(runs == 1);
  CHECK(t.settle() == 0);
  boost::asio::post(t.executor(), [&] { ++runs; });
  t.settle();
  CHECK(runs == 2);
}

TEST_CASE("testing: settle runs what its handlers post and never moves time", "[testing]") {
  xsn::testing::driver t;
  std::vector<int> order;
  boost::asio::post(t.executor(), [&] {
    order.push_back(1);
    boost::asio::post(t.executor(), [&] { order.push_back(3); });
  });
  boost::asio::post(t.executor(), [&] { order.push_back(2); });
  bool fired = false;
  t.clock().schedule(t.clock().now(), [&] { fired = true; });  // due now: fires on advance only
  CHECK(t.settle() == 3);
  CHECK(order == std::vector<int>{1, 2, 3});
  CHECK_FALSE(fired);
  CHECK(t.advance(0ms) == 1);
  CHECK(fired);
  CHECK(t.elapsed() == 0ms);
}

TEST_CASE("testing: settle gives up on work that re-posts itself forever", "[testing]") {
  xsn::testing::driver t;
  t.max_handlers = 100;
  std::function<void()> again = [&] { boost::asio::post(t.executor(), again); };
  boost::asio::post(t.executor(), again);
  CHECK_THROWS_AS(t.settle(), std::runtime_error);
}

TEST_CASE("testing: advance fires timers in due order then scheduling order and settles after each", "[testing]") {
  xsn::testing::driver t;
  recorder r{t, {}};
  r.at(30, "c");
  r.at(10, "a1");
  r.at(20, "b");
  r.at(10, "a2");  // same due time as a1, scheduled later
  r.at(31, "late");
  CHECK(t.advance(30ms) == 4);
  CHECK(r.log == std::vector<std::string>{"a1@10", "a1 ran", "a2@10", "a2 ran", "b@20", "b ran", "c@30", "c ran"});
  CHECK(t.elapsed() == 30ms);
  CHECK(t.clock().pending() == 1);
  r.log.clear();
  CHECK(t.advance(1ms) == 1);
  CHECK(r.log == std::vector<std::string>{"late@31", "late ran"});
}

TEST_CASE("testing: advance fires timers that timers and their handlers schedule within the window", "[testing]") {
  xsn::testing::driver t;
  recorder r{t, {}};
  t.clock().schedule(time_point{} + 10ms, [&] {
    r.log.push_back("first@" + std::to_string(ms_of(t.clock().now())));
    r.at(15, "by timer");   // inside the window
    r.at(60, "too late");   // beyond it
    boost::asio::post(t.executor(), [&] { r.at(25, "by handler"); });
  });
  CHECK(t.advance(50ms) == 3);
  CHECK(r.log == std::vector<std::string>{"first@10", "by timer@15", "by timer ran", "by handler@25", "by handler ran"});
  CHECK(t.elapsed() == 50ms);
  CHECK(t.clock().pending() == 1);
  CHECK(t.clock().next_due() == time_point{} + 60ms);
}

TEST_CASE("testing: run_until stops when the predicate holds or the window ends", "[testing]") {
  xsn::testing::driver t;
  recorder r{t, {}};
  for (int i = 1; i <= 5; ++i) r.at(i * 100, xsn_test::named("t", i));
  CHECK(t.run_until([&] { return r.log.size() == 4; }, 1s));  // t1 and t2, each with its handler
  CHECK(t.elapsed() == 200ms);
  CHECK_FALSE(t.run_until([] { return false; }, 250ms));
  CHECK(t.elapsed() == 450ms);
  CHECK(r.log.size() == 8);
}

TEST_CASE("testing: sessions of an XState chart started sent to and advanced", "[testing]") {
  auto parsed = xsn::parse_xstate(R"({"id": "door", "initial": "closed", "states": {
      "closed": {"on": {"OPEN": {"target": "opening", "actions": "count"}}},
      "opening": {"after": {"2000": "open"}},
      "open": {"on": {"CLOSE": "closed"}}}})",
                                  "door.json");
  REQUIRE(parsed);
  xsn::testing::driver t;
  int opened = 0;
  xsn::implementations impl;
  impl.action("count", [&](xsn::value&, const xsn::event&, const xsn::value&) { ++opened; });
  CHECK_FALSE(t.make_session(parsed.chart, xsn::implementations{}));  // `count` is not provided
  auto unbound = t.make_session(parsed.chart);                         // not bound at all
  CHECK(t.start(*unbound) == xsn::errc::not_bound);
  auto made = t.make_session(parsed.chart, impl);
  REQUIRE(made);
  auto& door = **made;
  CHECK_FALSE(t.start(door));
  CHECK(door.active_atomic_states() == std::vector<std::string>{"door.closed"});
  CHECK_FALSE(t.send(door, xsn::event("OPEN")));
  CHECK(door.active_atomic_states() == std::vector<std::string>{"door.opening"});
  CHECK(opened == 1);
  t.advance(1999ms);
  CHECK(door.active_atomic_states() == std::vector<std::string>{"door.opening"});
  t.advance(1ms);
  CHECK(door.active_atomic_states() == std::vector<std::string>{"door.open"});
  // After a step that found nothing to do, the next one still runs (the restart pitfall).
  t.settle();
  CHECK_FALSE(t.send(door, xsn::event("CLOSE")));
  CHECK(door.active_atomic_states() == std::vector<std::string>{"door.closed"});
}
