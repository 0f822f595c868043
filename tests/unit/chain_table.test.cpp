// The chain table (statechart::chain_next) and direct steps (hot_transition::direct): a chart with
// one active atomic state at a time selects an event's transition by lookup, and a transition that
// only moves the configuration is taken without the microstep's general machinery. Each must select
// what the scan of the W3C algorithm (or XState's) selects, and leave the same configuration.
#include <xsn/model/statechart.hpp>

#include "catch.hpp"
#include "session_driver.hpp"

#include <xsn/parse/scxml.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

namespace {

std::shared_ptr<const xsn::statechart> scxml(const std::string& body, const std::string& attrs = " datamodel=\"null\"") {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">" + body + "</scxml>",
                            "chain.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

/// The transition of state `source` whose first descriptor is `descriptor`, or npos.
xsn::transition_index transition_of(const xsn::statechart& c, const char* source, const char* descriptor) {
  const auto s = c.find_state(source);
  for (auto ti : c.states[s].transitions) {
    const auto& t = c.transitions[ti];
    if (t.any_event ? std::string(descriptor) == "*" : !t.events.empty() && c.names[t.events.front()] == descriptor) return ti;
  }
  return xsn::npos;
}

/// The chain table's answer in state `atomic` for the event `name` (which the chart names).
xsn::transition_index step(const xsn::statechart& c, const char* atomic, const char* name) {
  const auto id = c.find_name(name);
  REQUIRE(id != xsn::npos);
  return c.chain_step(c.find_state(atomic), id);
}

bool direct(const xsn::statechart& c, xsn::transition_index ti) {
  return (c.hot_transitions[ti].flags & xsn::hot_transition::direct) != 0;
}

/// A session of `chart` driven synchronously through `process`.
struct runner {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::shared_ptr<const xsn::statechart> chart;
  std::unique_ptr<xsn::session> s;
  int macrosteps = 0;

  explicit runner(std::shared_ptr<const xsn::statechart> c, bool start = true) : chart(std::move(c)) {
    xsn::session_options o;
    o.on_macrostep = [this](xsn::session&) { ++macrosteps; };
    s = std::make_unique<xsn::session>(chart, ioc.get_executor(), clk, std::move(o));
    if (start) REQUIRE_FALSE(s->start());
  }
  void process(const char* name) { REQUIRE_FALSE(s->process(xsn::event(name))); }
  bool active(const char* id) const { return s->is_active(chart->find_state(id)); }
};

const char* const nested = R"x(
  <state id="p" initial="a">
    <transition event="up" target="z"/>
    <transition event="go.far" target="z"/>
    <transition event="guarded" target="z"/>
    <state id="a">
      <transition event="go" target="b"/>
      <transition event="guarded" cond="In('b')" target="b"/>
    </state>
    <state id="b"><transition event="*" target="a"/></state>
  </state>
  <state id="z"><transition event="back" target="p"/></state>)x";

}  // namespace

TEST_CASE("chain_table: the nearest matching transition, by atomic state and event name") {
  const auto c = scxml(nested);
  REQUIRE_FALSE(c->chain_next.empty());
  const auto a_go = transition_of(*c, "a", "go");
  CHECK(step(*c, "a", "go") == a_go);
  CHECK(step(*c, "a", "go.far") == a_go);  // descriptor `go` matches `go.far`, before p's own
  CHECK(step(*c, "a", "up") == transition_of(*c, "p", "up"));  // from the parent
  CHECK(step(*c, "a", "guarded") == xsn::statechart::chain_guarded);  // a guard decides
  CHECK(step(*c, "b", "guarded") == transition_of(*c, "b", "*"));  // `*` matches every name
  CHECK(step(*c, "z", "up") == xsn::statechart::chain_none);
  CHECK(step(*c, "z", "back") == transition_of(*c, "z", "back"));
}

TEST_CASE("chain_table: charts with parallel states have none") {
  const auto c = scxml(R"x(<parallel id="p"><state id="r1"><transition event="e" target="r1"/></state>
                          <state id="r2"/></parallel>)x");
  CHECK(c->chain_next.empty());
  CHECK(c->chain_slot.empty());
}

TEST_CASE("chain_table: only transitions that change nothing but the configuration are direct") {
  const auto c = scxml(R"x(
    <state id="a">
      <transition event="plain" target="b"/>
      <transition event="into_compound" target="c"/>
      <transition event="with_body" target="b"><raise event="x"/></transition>
      <transition event="to_entry" target="e"/>
      <transition event="to_final" target="f"/>
      <transition event="self" target="a"/>
      <transition event="targetless"/>
    </state>
    <state id="b"/>
    <state id="c" initial="c1"><state id="c1"><transition event="up" target="a"/></state></state>
    <state id="e"><onentry><raise event="y"/></onentry></state>
    <final id="f"/>)x");
  CHECK(direct(*c, transition_of(*c, "a", "plain")));
  CHECK(direct(*c, transition_of(*c, "a", "into_compound")));  // c and c1 by default, no content
  CHECK(direct(*c, transition_of(*c, "a", "self")));          // exits and enters a
  CHECK_FALSE(direct(*c, transition_of(*c, "a", "with_body")));
  CHECK_FALSE(direct(*c, transition_of(*c, "a", "to_entry")));
  CHECK_FALSE(direct(*c, transition_of(*c, "a", "to_final")));
  CHECK_FALSE(direct(*c, transition_of(*c, "a", "targetless")));
  CHECK_FALSE(direct(*c, transition_of(*c, "c1", "up")));  // exits c too: its domain is not c1's parent
}

TEST_CASE("chain_table: sessions step by it as the W3C algorithm does") {
  runner r(scxml(nested));
  const int started = r.macrosteps;  // start's own
  r.process("go.far");  // a's `go`
  CHECK(r.active("b"));
  CHECK(r.active("p"));
  r.process("guarded");  // b's `*`
  CHECK(r.active("a"));
  r.process("guarded");  // a's guarded transition fails (not in b): p's
  CHECK(r.active("z"));
  CHECK_FALSE(r.active("p"));
  r.process("up");  // nothing in z takes it
  CHECK(r.active("z"));
  r.process("back");  // p entered by default: a
  CHECK(r.active("a"));
  CHECK(r.macrosteps - started == 5);  // direct steps report their macrostep too
  CHECK(r.s->transitions_taken() == 4);
}

TEST_CASE("chain_table: a restored session steps from the restored configuration") {
  // A restore sets the configuration without entering states: the session's guess of its active
  // atomic state (the chart's last one, z, here) must give way to the restored one.
  const auto c = scxml(nested);
  runner first(c);
  first.process("go");
  REQUIRE(first.active("b"));
  const auto snap = first.s->snapshot();
  runner second(c, false);
  REQUIRE_FALSE(second.s->restore(snap));
  REQUIRE(second.active("b"));
  second.process("up");  // b's `*` (in z, nothing would take it)
  CHECK(second.active("a"));
  second.process("up");  // p's own, from a
  CHECK(second.active("z"));
}

TEST_CASE("chain_table: direct and general steps alternate in a chart of more than 256 states") {
  std::string body = R"x(<state id="off"><transition event="toggle" target="on"/>
                          <transition event="far" target="s299"/></state>
                        <state id="on"><transition event="toggle" target="off"/>
                          <transition event="far" target="s299"><raise event="x"/></transition></state>)x";
  for (int i = 0; i < 300; ++i) body += "<state id=\"s" + std::to_string(i) + "\"><transition event=\"toggle\" target=\"off\"/></state>";
  runner r(scxml(body));
  r.process("toggle");  // direct
  CHECK(r.active("on"));
  r.process("far");  // with a body: the general microstep
  CHECK(r.active("s299"));
  CHECK_FALSE(r.active("on"));
  r.process("toggle");  // direct again, from the state the general step entered
  CHECK(r.active("off"));
  CHECK_FALSE(r.active("s299"));
  r.process("far");  // direct
  CHECK(r.active("s299"));
}

TEST_CASE("chain_table: XState machines step by it from the machine's root down") {
  xsn_test::session_driver d(xsn_test::xstate_chart(R"x({"id": "m", "initial": "a", "on": {"reset": ".a"},
    "states": {"a": {"on": {"go": "b", "go.*": "c"}}, "b": {"on": {"go": "a"}}, "c": {}}})x"));
  const auto& c = *d.chart;
  REQUIRE_FALSE(c.chain_next.empty());
  CHECK(c.chain_step(c.find_state("m.c"), c.find_name("reset")) != xsn::statechart::chain_none);  // the root's own
  d.open(xsn::xstate_datamodel(xsn_test::bound(c, xsn::implementations{})), false);
  REQUIRE_FALSE(d.s->start());
  REQUIRE_FALSE(d.s->process(xsn::event("go")));
  CHECK(d.s->is_active(c.find_state("m.b")));
  REQUIRE_FALSE(d.s->process(xsn::event("go")));
  CHECK(d.s->is_active(c.find_state("m.a")));
  REQUIRE_FALSE(d.s->process(xsn::event("go.deep")));  // not named by the chart: the usual selection
  CHECK(d.s->is_active(c.find_state("m.c")));
  REQUIRE_FALSE(d.s->process(xsn::event("reset")));
  CHECK(d.s->is_active(c.find_state("m.a")));
}

TEST_CASE("chain_table: a chart whose table would cost too much to build has none and still runs") {
  // 900 nested states, each with a `*` transition, and 1,200 event names: 1.08 million
  // (state, name) answers (the budget: 2^20) to build a table of 1,200 entries. No table.
  std::string body;
  for (int i = 0; i < 900; ++i) body += "<state id=\"n" + std::to_string(i) + "\"><transition event=\"*\" cond=\"In('x')\"/>";
  body += "<state id=\"leaf\">";
  for (int i = 0; i < 1200; ++i) body += "<transition event=\"e" + std::to_string(i) + "\" target=\"x\"/>";
  body += "</state>";
  for (int i = 0; i < 900; ++i) body += "</state>";
  body += "<state id=\"x\"/>";
  runner r(scxml(body));
  CHECK(r.chart->chain_next.empty());
  REQUIRE(r.active("leaf"));
  r.process("e1199");
  CHECK(r.active("x"));
}
