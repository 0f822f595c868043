// The orchestrator on a pool of its own, driven from several threads while others read its
// status and watch its changes (CI also runs this file under ThreadSanitizer).
#include <xsn/orchestrator/orchestrator.hpp>

#include "catch.hpp"
#include "names.hpp"

#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/config.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/store/memory_state_store.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#if XSN_WITH_ECMASCRIPT
TEST_CASE("orchestrator_concurrency: sends from several threads, messages between machines, readers and watchers") {
  // `pass` forwards a `token` to the counter machine: a message through the outbox.
  auto counter = xsn::parse_scxml(R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript">
    <datamodel><data id="n" expr="0"/></datamodel>
    <state id="s"><transition event="token"><assign location="n" expr="n + 1"/></transition>
      <transition cond="n == 300" target="full"/></state><final id="full"/></scxml>)",
                                  "counter.scxml");
  auto relay = xsn::parse_scxml(R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0">
    <state id="s"><transition event="pass"><send target="xsn:counter" event="token"/></transition></state></scxml>)",
                                "relay.scxml");
  REQUIRE(counter);
  REQUIRE(relay);
  boost::asio::io_context store_ctx;  // the store's and the bus's completions, on a thread of their own
  auto work = boost::asio::make_work_guard(store_ctx);
  std::thread store_thread([&] { store_ctx.run(); });
  xsn::manual_clock clk;
  std::atomic<int> changes{0};
  std::promise<void> full;  // the counter got every token: its write with status done
  {
    xsn::memory_state_store store(store_ctx.get_executor(), clk);
    xsn::channel_event_bus bus(store_ctx.get_executor(), clk);
    xsn::orchestrator orch(2, clk, bus, store);
    REQUIRE(orch.add_document("counter", counter.chart));
    REQUIRE(orch.add_document("relay", relay.chart));
    auto watch = orch.watch_changes([&](const xsn::machine_change& c) {
      ++changes;
      if (c.id == "counter" && c.status == xsn::session_status::done) full.set_value();
    });
    REQUIRE_FALSE(orch.async_create("counter", "counter", boost::asio::use_future).get());
    constexpr int relays = 4, per_thread = 150;
    for (int i = 0; i < relays; ++i)
      REQUIRE_FALSE(orch.async_create(xsn_test::named("r", i), "relay", boost::asio::use_future).get());
    std::atomic<bool> stop{false};
    std::thread reader([&] {  // reads the status cache and health while the strand writes them
      while (!stop.load()) {
        (void)orch.health();
        (void)orch.query("counter");
        (void)orch.list();
      }
    });
    auto produce = [&](int t) {
      std::vector<std::future<std::tuple<std::error_code, xsn::send_result>>> done;
      for (int i = 0; i < per_thread; ++i)
        done.push_back(orch.async_send(xsn_test::named("r", (t + i) % relays), xsn::event("pass"),
                                       xsn::send_options{xsn_test::named(xsn_test::named("t", t) + "-", i)},
                                       boost::asio::use_future));
      int ok = 0;
      for (auto& f : done) ok += std::get<0>(f.get()) ? 0 : 1;
      return ok;
    };
    auto a = std::async(std::launch::async, produce, 0);
    auto b = std::async(std::launch::async, produce, 1);
    CHECK(a.get() == per_thread);
    CHECK(b.get() == per_thread);
    // Every relay's messages reach the counter (exactly once: the counter ends at 300 = 2 x 150).
    full.get_future().get();
    auto [ec, snap] = orch.async_snapshot("counter", boost::asio::use_future).get();
    REQUIRE_FALSE(ec);
    CHECK(snap.at("snapshot").at("context").at("n") == 2 * per_thread);
    watch.reset();
    stop = true;
    reader.join();
    CHECK_FALSE(orch.async_shutdown(std::chrono::seconds(1), boost::asio::use_future).get());
    CHECK(orch.health().write_failures == 0);
  }
  CHECK(changes.load() > 0);
  work.reset();
  store_thread.join();
}
#endif
