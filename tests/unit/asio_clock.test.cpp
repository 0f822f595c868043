#include <xsn/core/asio_clock.hpp>

#include "catch.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

// Deterministic: every timer is either already due (a due time in the past completes as soon as
// the executor runs) or cancelled, so `io_context::run()` returns without waiting on real time.

using namespace std::chrono_literals;

namespace {

xsn::clock::time_point past(const xsn::clock& c, xsn::clock::duration ago = 1s) { return c.now() - ago; }
xsn::clock::time_point far_future(const xsn::clock& c) { return c.now() + 24h; }

}  // namespace

TEST_CASE("asio_clock: now follows steady_clock", "[asio_clock]") {
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  const auto before = std::chrono::steady_clock::now();
  const auto t = clk.now();
  const auto after = std::chrono::steady_clock::now();
  CHECK(before <= t);
  CHECK(t <= after);
  CHECK(clk.now() >= t);
  CHECK(clk.get_executor() == boost::asio::any_io_executor(ioc.get_executor()));
}

TEST_CASE("asio_clock: a past-due timer fires on the executor and run returns", "[asio_clock]") {
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  int fired = 0;
  bool on_executor = false;
  const auto id = clk.schedule(past(clk), [&] {
    ++fired;
    on_executor = ioc.get_executor().running_in_this_thread();
  });
  CHECK(clk.pending() == 1);
  CHECK(fired == 0);  // Never synchronously from `schedule`.

  ioc.run();

  CHECK(fired == 1);
  CHECK(on_executor);
  CHECK(clk.pending() == 0);
  CHECK_FALSE(clk.cancel(id));  // Already fired.
}

TEST_CASE("asio_clock: ids are distinct", "[asio_clock]") {
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  const auto a = clk.schedule(far_future(clk), [] {});
  const auto b = clk.schedule(far_future(clk), [] {});
  CHECK(a != b);
  CHECK(clk.pending() == 2);
  CHECK(clk.cancel(a));
  CHECK(clk.cancel(b));
  ioc.run();  // Returns at once: cancelled waits hold no work.
}

TEST_CASE("asio_clock: cancel before run means never fired", "[asio_clock]") {
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  int fired = 0;

  SECTION("past due") {
    const auto id = clk.schedule(past(clk), [&] { ++fired; });
    CHECK(clk.cancel(id));
    CHECK_FALSE(clk.cancel(id));  // Second cancel: already cancelled.
  }
  SECTION("far in the future: run does not wait for it") {
    const auto id = clk.schedule(far_future(clk), [&] { ++fired; });
    CHECK(clk.cancel(id));
  }
  CHECK(clk.pending() == 0);
  ioc.run();
  CHECK(fired == 0);
}

TEST_CASE("asio_clock: cancelling an unknown id is false", "[asio_clock]") {
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  CHECK_FALSE(clk.cancel(12345));
}

TEST_CASE("asio_clock: destruction cancels every pending timer", "[asio_clock]") {
  boost::asio::io_context ioc;
  int fired = 0;
  {
    xsn::asio_clock clk(ioc.get_executor());
    clk.schedule(past(clk), [&] { ++fired; });
    clk.schedule(far_future(clk), [&] { ++fired; });
    CHECK(clk.pending() == 2);
  }
  ioc.run();  // Returns at once; the aborted completions find no clock.
  CHECK(fired == 0);
}

TEST_CASE("asio_clock: past-due timers fire in due order", "[asio_clock]") {
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  std::vector<std::string> order;
  const auto base = clk.now();
  clk.schedule(base - 1s, [&] { order.push_back("later"); });
  clk.schedule(base - 2s, [&] { order.push_back("earlier"); });
  ioc.run();
  CHECK(order == std::vector<std::string>{"earlier", "later"});
}

TEST_CASE("asio_clock: a cancel after expiry, before the completion ran, still wins",
          "[asio_clock]") {
  // Both timers are past due, so both completions are queued together; the first cancels the
  // second, whose `steady_timer::cancel` can no longer abort it. The id map must stop it.
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  const auto base = clk.now();
  int second_fired = 0;
  bool cancelled = false;
  xsn::clock::timer_id second = 0;
  clk.schedule(base - 2s, [&] { cancelled = clk.cancel(second); });
  second = clk.schedule(base - 1s, [&] { ++second_fired; });
  ioc.run();
  CHECK(cancelled);
  CHECK(second_fired == 0);
  CHECK(clk.pending() == 0);
}

TEST_CASE("asio_clock: a callback may schedule another timer", "[asio_clock]") {
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  std::vector<int> order;
  clk.schedule(past(clk), [&] {
    order.push_back(1);
    clk.schedule(past(clk), [&] { order.push_back(2); });
  });
  ioc.run();
  CHECK(order == std::vector<int>{1, 2});
  CHECK(clk.pending() == 0);
}

TEST_CASE("asio_clock: a callback may destroy the clock", "[asio_clock]") {
  boost::asio::io_context ioc;
  auto clk = std::make_unique<xsn::asio_clock>(ioc.get_executor());
  const auto base = clk->now();
  int fired = 0;
  clk->schedule(base - 2s, [&] {
    ++fired;
    clk.reset();  // The other past-due completion is already queued; it must do nothing.
  });
  clk->schedule(base - 1s, [&] { ++fired; });
  clk->schedule(base + 24h, [&] { ++fired; });
  ioc.run();
  CHECK(fired == 1);
  CHECK(clk == nullptr);
}
