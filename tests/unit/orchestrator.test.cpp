#include <xsn/orchestrator/orchestrator.hpp>

#include "catch.hpp"
#include "orchestrator_fixture.hpp"

#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/store/memory_state_store.hpp>

#include <boost/asio/io_context.hpp>

#include <boost/json/parse.hpp>

#include <future>
#include <optional>
#include <string>
#include <vector>

namespace {

std::shared_ptr<const xsn::statechart> chart(const std::string& body, const std::string& attrs = "") {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">" + body + "</scxml>",
                            "orch.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

const char* counter_doc = R"(<datamodel><data id="n" expr="0"/></datamodel>
  <state id="idle"><transition event="inc"><assign location="n" expr="n + 1"/></transition>
    <transition event="go" target="busy"/></state>
  <state id="busy"><onentry><send event="done" delay="1s"/></onentry><transition event="done" target="idle"/>
    <transition event="ping" target="idle"><send target="xsn:peer" event="pong"/></transition></state>)";

const char* peer_doc = R"(<state id="waiting"><transition event="pong" target="got"/></state><state id="got"/>)";

using states_t = std::vector<std::string>;

struct fixture : xsn_test::fixture {
  fixture()
      : xsn_test::fixture([](xsn::orchestrator& o) {
          REQUIRE(o.add_document("counter", chart(counter_doc, " datamodel=\"ecmascript\"")));
          REQUIRE(o.add_document("peer", chart(peer_doc)));
        }) {}
};

}  // namespace

TEST_CASE("machines are created, addressed by id, and persisted after every macrostep") {
  fixture fx;
  REQUIRE_FALSE(fx.create("c1", "counter"));
  CHECK(fx.create("c1", "counter") == xsn::errc::already_exists);
  CHECK(fx.create("c2", "nope") == xsn::errc::unknown_document);
  CHECK(fx.send("zz", "inc") == xsn::errc::unknown_machine);
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(fx.send("c1", "inc"));
  CHECK(fx.stored_n("c1") == 3);
  CHECK(fx.orch->list() == states_t{"c1"});
  CHECK(fx.states("c1") == states_t{"idle"});
  auto h = fx.orch->health();
  CHECK(h.machines == 1);
  CHECK(h.events == 3);
  CHECK(h.writes == 4);
  CHECK(h.write_failures == 0);
  CHECK(h.store_reachable);
  CHECK(h.store_breaker.empty());
}

TEST_CASE("events reach machines through the bus, and machines send to each other") {
  fixture fx;
  REQUIRE_FALSE(fx.create("c", "counter"));
  REQUIRE_FALSE(fx.create("peer", "peer"));
  REQUIRE_FALSE(fx.bus->publish(xsn::bus_message("machine/c", xsn::event("go"))));
  CHECK(fx.states("c") == states_t{"busy"});
  REQUIRE_FALSE(fx.send("c", "ping"));  // c sends pong to xsn:peer through the bus
  CHECK(fx.states("c") == states_t{"idle"});
  CHECK(fx.states("peer") == states_t{"got"});
}

TEST_CASE("a crash loses no acknowledged event; restore continues with timers") {
  fixture fx;
  REQUIRE_FALSE(fx.create("c", "counter"));
  REQUIRE_FALSE(fx.create("peer", "peer"));
  for (int i = 0; i < 5; ++i) REQUIRE_FALSE(fx.send("c", "inc"));
  REQUIRE_FALSE(fx.send("c", "go"));  // busy, with a delayed `done` pending
  fx.advance(std::chrono::milliseconds(400));
  fx.crash();
  fx.boot();
  CHECK(fx.restore() == 2);
  CHECK(fx.states("c") == states_t{"busy"});
  CHECK(fx.stored_n("c") == 5);
  // The timer was due 1 s after `go`; 400 ms passed before the crash: it fires 600 ms later.
  fx.advance(std::chrono::milliseconds(599));
  CHECK(fx.states("c") == states_t{"busy"});
  fx.advance(std::chrono::milliseconds(1));
  CHECK(fx.states("c") == states_t{"idle"});
  REQUIRE_FALSE(fx.send("c", "inc"));
  CHECK(fx.stored_n("c") == 6);
}

TEST_CASE("graceful shutdown persists every machine and refuses new work") {
  fixture fx;
  REQUIRE_FALSE(fx.create("c", "counter"));
  REQUIRE_FALSE(fx.bus->publish(xsn::bus_message("machine/c", xsn::event("inc"))));  // queued, not yet processed
  REQUIRE_FALSE(fx.shutdown());
  CHECK(fx.stored_n("c") == 1);  // the queued event was drained and persisted
  CHECK(fx.send("c", "inc") == xsn::errc::not_running);
  CHECK_FALSE(fx.orch->health().accepting);
  CHECK(fx.clk.pending() == 0);  // no timer of any machine is left
}

TEST_CASE("a restarted orchestrator with a different process refuses an id already stored") {
  fixture fx;
  REQUIRE_FALSE(fx.create("c", "counter"));
  fx.crash();
  fx.boot();
  CHECK(fx.create("c", "counter") == xsn::errc::already_exists);  // restore it instead
  CHECK(fx.restore() == 1);
  CHECK(fx.states("c") == states_t{"idle"});
}

TEST_CASE("stored garbage is skipped on restore and reported") {
  fixture fx;
  std::promise<std::error_code> p;
  auto f = p.get_future();
  fx.store.async_put("xsn/machines/bad", "{not json", [&p](std::error_code ec, xsn::store_version) { p.set_value(ec); });
  REQUIRE_FALSE(fx.wait(f));
  REQUIRE_FALSE(fx.create("c", "counter"));
  CHECK(fx.restore() == 0);  // c is already running, bad is garbage
  CHECK_FALSE(fx.orch->health().last_error.empty());
}
