// XState `after` timers whose events are queued together: in XState a fired timer's event is
// processed at once, so leaving a state cancels a timer before it can fire. In xsn a fired timer
// queues its event; leaving the state must withdraw it from the queue, or it would act on a later
// state (a wildcard) or on a later activation of the same state (firing its `after` early).
#include <xsn/parse/xstate.hpp>

#include "catch.hpp"
#include "session_driver.hpp"

#include <xsn/runtime/builder.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/inspection.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// A chart on a private io_context and manual clock; the clock can move without running the
/// executor, so that several fired timers queue their events before any is processed.
struct runner : xsn_test::session_driver {
  std::vector<std::string> inspected;  // `@xstate.event`s: the names of the events processed

  runner(std::shared_ptr<const xsn::statechart> c, xsn::datamodel_factory dm, bool start = true, std::string id = {})
      : session_driver(std::move(c)) {
    options = [this, id = std::move(id)](xsn::session_options& o) {
      o.session_id = id;
      o.inspect = [this](const xsn::inspection_event& e) {
        if (e.kind == xsn::inspection_kind::event && e.event) inspected.push_back(e.event->name);
      };
    };
    open(std::move(dm), start);
  }
};

/// `record_event` appends the event's name to `log`; the delay `short` is 100 ms.
xsn::implementations recording(std::vector<std::string>& log) {
  xsn::implementations impl;
  impl.action("record_event", [&log](xsn::value&, const xsn::event& ev, const xsn::value&) { log.push_back(ev.name); });
  impl.delay("short", 100ms);
  return impl;
}

/// An XState JSON machine whose `record_event` action appends to `log`.
std::unique_ptr<runner> xstate_runner(const std::string& json, std::vector<std::string>& log, bool start = true,
                                      std::string id = {}) {
  auto chart = xsn_test::xstate_chart(json, "timers.json");
  return std::make_unique<runner>(chart, xsn::xstate_datamodel(xsn_test::bound(*chart, recording(log))), start,
                                  std::move(id));
}

// `p` re-enters itself after 100 ms; its child `a` leaves for `b` after 100 ms. `p` is entered
// first, so its timer is scheduled first and, due at the same time, fires first.
constexpr const char* reenter_parent = R"({"id": "m", "initial": "p", "states": {
  "p": {"initial": "a", "after": {"100": {"target": "p", "reenter": true}},
        "states": {"a": {"after": {"100": "b"}}, "b": {}}}}})";

}  // namespace

TEST_CASE("xstate_timers: a timer due with one that re-enters its state is cancelled, not fired early") {
  std::vector<std::string> log;
  auto r = xstate_runner(reenter_parent, log);
  CHECK(r->config() == "m m.p m.p.a ");
  r->advance(100);  // both fire; p's event re-enters p (and a): a's queued event is withdrawn
  CHECK(r->config() == "m m.p m.p.a ");
  CHECK(r->inspected == std::vector<std::string>{"xstate.init", "xstate.after.100.m.p"});
  r->advance(99);
  CHECK(r->config() == "m m.p m.p.a ");
  r->advance(1);  // the new activation's timers, at 200 ms: again p first
  CHECK(r->config() == "m m.p m.p.a ");
  CHECK(r->inspected.size() == 3);
  CHECK(r->clk.pending() == 2);  // p's and a's timers of the third activation, nothing else
}

TEST_CASE("xstate_timers: an event queued by a timer of a state exited meanwhile never arrives") {
  // XState: p's timer fires first and leaves p, cancelling a's; c's wildcard never sees a's event.
  std::vector<std::string> log;
  auto r = xstate_runner(R"({"id": "m", "initial": "p", "states": {
    "p": {"initial": "a", "after": {"100": "c"}, "states": {"a": {"after": {"100": {"actions": "record_event"}}}}},
    "c": {"on": {"*": {"actions": "record_event"}}}}})", log);
  r->advance(100);
  CHECK(r->config() == "m m.c ");
  CHECK(log.empty());
  CHECK(r->inspected == std::vector<std::string>{"xstate.init", "xstate.after.100.m.p"});
  CHECK(r->s->queued() == 0);
  r->s->send(xsn::event("PING"));
  r->settle();
  CHECK(log == std::vector<std::string>{"PING"});
}

TEST_CASE("xstate_timers: a state's own earlier timer re-entering it withdraws its later queued timer") {
  // XState, one tick of 100 ms: at 50 `a` re-enters (timers now due at 100 and 150), at 100 again:
  // the 100 ms timer of the first activation never fires, the machine stays in `a`.
  std::vector<std::string> log;
  auto r = xstate_runner(R"({"id": "m", "initial": "a", "states": {
    "a": {"after": {"50": {"target": "a", "reenter": true, "actions": "record_event"}, "short": "b"}},
    "b": {}}})", log);
  r->clk.advance(100ms);  // 50 and `short` (100) both fire before the executor runs
  CHECK(r->s->queued() == 2);
  r->settle();
  CHECK(r->config() == "m m.a ");
  CHECK(log == std::vector<std::string>{"xstate.after.50.m.a"});
  r->advance(50);  // 150: the re-entered activation's 50 ms timer
  CHECK(r->config() == "m m.a ");
  r->advance(50);  // 200: its 100 ms timer was cancelled by that re-entry at 150
  CHECK(r->config() == "m m.a ");
  r->advance(50);
  r->advance(50);
  CHECK(r->config() == "m m.a ");
  CHECK(log.size() == 5);  // re-entries at 100, 150, 200, 250, 300
  CHECK(r->clk.pending() == 2);
}

TEST_CASE("xstate_timers: restored timers and queued timer events are withdrawn alike") {
  std::vector<std::string> log;
  auto r = xstate_runner(reenter_parent, log);
  const auto pending = r->s->snapshot();  // both timers pending
  r->clk.advance(100ms);                  // both events queued, nothing processed
  const auto queued = r->s->snapshot();
  REQUIRE(pending.at("pending").as_array().size() == 2);
  REQUIRE(queued.at("queue").as_array().size() == 2);
  const bool same_id = GENERATE(true, false);  // restored under the snapshot's session id, or another
  const bool from_queue = GENERATE(true, false);
  INFO("same id: " << same_id << ", from the queue: " << from_queue);
  auto fresh = xstate_runner(reenter_parent, log, false, same_id ? std::string() : std::string("renamed"));
  REQUIRE_FALSE(fresh->s->restore(boost::json::parse(boost::json::serialize(from_queue ? queued : pending))));
  CHECK((fresh->s->id() == r->s->id()) == same_id);
  if (!from_queue) fresh->clk.advance(100ms);  // the restored timers fire together
  fresh->settle();
  CHECK(fresh->config() == "m m.p m.p.a ");
  CHECK(fresh->inspected.back() == "xstate.after.100.m.p");
  CHECK(fresh->s->queued() == 0);
  fresh->advance(100);  // the timers of the re-entered activation
  CHECK(fresh->config() == "m m.p m.p.a ");
  CHECK(fresh->inspected.back() == "xstate.after.100.m.p");
  CHECK(fresh->clk.pending() == 2);
}

TEST_CASE("xstate_timers: async_send behind a withdrawn timer event completes after its own macrostep") {
  std::vector<std::string> log;
  auto r = xstate_runner(R"({"id": "m", "initial": "p", "states": {
    "p": {"initial": "a", "after": {"100": "c"}, "states": {"a": {"after": {"100": "#m.d"}}}},
    "c": {"on": {"GO": "e"}}, "d": {}, "e": {}}})", log);
  r->clk.advance(100ms);
  std::error_code ec = make_error_code(std::errc::io_error);
  std::vector<std::string> states;
  int calls = 0;
  r->s->async_send(xsn::event("GO"), [&](std::error_code e, std::vector<std::string> st) {
    ec = e;
    states = std::move(st);
    ++calls;
  });
  r->settle();
  CHECK(calls == 1);
  CHECK_FALSE(ec);
  CHECK(states == std::vector<std::string>{"m.e"});
  CHECK(r->inspected == std::vector<std::string>{"xstate.init", "xstate.after.100.m.p", "GO"});
}

TEST_CASE("xstate_timers: builder machines' after timers are withdrawn the same way") {
  std::vector<std::string> log;
  auto m = xsn::machine("m")
               .initial("p")
               .state("p", xsn::compound("a")
                               .with(xsn::after(100ms, "p").reenter())
                               .state("a", xsn::after(100ms, "b"))
                               .state("b"))
               .build(recording(log));
  INFO((m ? std::string() : m.error().message));
  REQUIRE(m);
  runner r(m->chart, m->datamodel());
  r.advance(100);
  CHECK(r.config() == "m m.p m.p.a ");
  r.advance(100);
  CHECK(r.config() == "m m.p m.p.a ");
}

TEST_CASE("xstate_timers: SCXML keeps a delayed event that was queued before <cancel> ran") {
  // W3C SCXML 6.3: <cancel> cannot withdraw an event already delivered to the external queue.
  auto r = xsn::parse_scxml(R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" initial="p">
    <state id="p" initial="a">
      <onentry><send event="leave" delay="100ms"/></onentry>
      <transition event="leave" target="c"/>
      <state id="a">
        <onentry><send id="t" event="late" delay="100ms"/></onentry>
        <onexit><cancel sendid="t"/></onexit>
      </state>
    </state>
    <state id="c"><transition event="late" target="d"/></state>
    <state id="d"/>
  </scxml>)", "timers.scxml");
  INFO((r.errors.empty() ? std::string() : r.errors.front().to_string()));
  REQUIRE(r);
  runner run(r.chart, {});
  run.clk.advance(std::chrono::milliseconds(100));  // both timers fire before the executor runs
  run.settle();
  CHECK(run.config() == "d ");
}

