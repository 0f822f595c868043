#include <xsn/runtime/actors.hpp>

#include "catch.hpp"
#include "session_driver.hpp"

#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

const char* machine_json = R"({
  "id": "m", "initial": "wait",
  "states": {
    "wait": {"invoke": {"src": "work", "id": "w", "input": 20, "onDone": {"target": "ok", "actions": ["finished"]}}},
    "ok": {}
  }
})";

/// A started session of `chart` bound to `impl`, on `ioc` and `clk`.
std::unique_ptr<xsn::session> started(std::shared_ptr<const xsn::statechart> chart, const xsn::implementations& impl,
                                      boost::asio::io_context& ioc, xsn::clock& clk) {
  xsn::session_options o;
  o.make_datamodel = xsn::xstate_datamodel(xsn_test::bound(*chart, impl));
  auto s = std::make_unique<xsn::session>(std::move(chart), ioc.get_executor(), clk, std::move(o));
  s->start();
  return s;
}

}  // namespace

TEST_CASE("xstate_actors_concurrency: a promise actor resolved from another thread completes on the session's executor") {
  auto parsed = xsn::parse_xstate(machine_json, "m.json");
  REQUIRE(parsed);
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  auto guard = boost::asio::make_work_guard(ioc);  // keeps run() going until the machine is done
  std::thread worker;
  std::promise<xsn::promise_handle> handed;
  std::optional<std::thread::id> done_on;
  xsn::value output;
  xsn::implementations impl;
  impl.actor("work", xsn::actor_logic::promise([&](const xsn::value& input, xsn::promise_handle h) {
    const auto n = input.to_number<std::int64_t>();
    worker = std::thread([h, n] {
      std::int64_t sum = 0;
      for (std::int64_t i = 1; i <= n; ++i) sum += i;
      h.resolve(sum);
      h.resolve(-1);  // ignored: settled once
    });
  }));
  impl.action("finished", [&](xsn::value&, const xsn::event& ev, const xsn::value&) {
    output = ev.data.at("output");
    done_on = std::this_thread::get_id();
    guard.reset();
  });
  auto s = started(parsed.chart, impl, ioc, clk);
  ioc.run();
  worker.join();
  REQUIRE(done_on);
  CHECK(*done_on == std::this_thread::get_id());
  CHECK(output == xsn::value(210));
  CHECK(s->active_atomic_states() == std::vector<std::string>{"m.ok"});
}

TEST_CASE("xstate_actors_concurrency: a promise settled from another thread while the actor is stopped is dropped") {
  auto parsed = xsn::parse_xstate(R"({"id": "m", "initial": "wait", "states": {
    "wait": {"invoke": {"src": "work", "id": "w", "onDone": "ok"}, "on": {"cancel": "idle"}}, "idle": {}, "ok": {}}})",
                                   "m.json");
  REQUIRE(parsed);
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::optional<xsn::promise_handle> handle;
  xsn::implementations impl;
  impl.actor("work", xsn::actor_logic::promise([&](const xsn::value&, xsn::promise_handle h) { handle = h; }));
  auto s = started(parsed.chart, impl, ioc, clk);
  REQUIRE(handle);
  // The other thread settles while this one stops the actor: either order ends in `idle`.
  std::thread settler([h = *handle] { h.resolve(1); });
  REQUIRE_FALSE(s->send(xsn::event("cancel")));
  ioc.run();
  settler.join();
  ioc.restart();
  ioc.run();
  CHECK(s->active_atomic_states() == std::vector<std::string>{"m.idle"});
}
