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

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

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

bool own_exit(const xsn::statechart& c, xsn::transition_index ti) {
  return (c.hot_transitions[ti].flags & xsn::hot_transition::own_exit) != 0;
}

/// What a run of `chart` did: each native action called (`<xsn:action name>`, bound to a recorder,
/// except the names in `unbound` and `stop`, which stops the session), with the active atomic
/// states it saw; each event's configuration after it; the errors reported.
struct trace_run {
  std::vector<std::string> lines;
  std::uint64_t transitions = 0;
  xsn::session_status status = xsn::session_status::created;
};

/// Runs `chart` on `events`; `general`: with an inspector attached, which keeps every event on the
/// general macrostep (no direct steps). Direct and general runs must trace the same.
trace_run run_traced(const std::shared_ptr<const xsn::statechart>& chart, const std::vector<std::string>& events, bool general,
                     const std::vector<std::string>& unbound = {}) {
  trace_run out;
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session_options o;
  const auto seen = [&out](xsn::session& s, const std::string& what) {
    std::string line = what + ":";
    for (const auto& a : s.active_atomic_states()) line += " " + a;
    out.lines.push_back(line);
  };
  for (const auto& name : chart->native_actions) {
    if (std::find(unbound.begin(), unbound.end(), name) != unbound.end()) continue;
    if (name == "stop") o.actions[name] = [](xsn::session& s) { s.stop(); };
    else o.actions[name] = [seen, name](xsn::session& s) { seen(s, name); };
  }
  o.on_diagnostic = [&out](xsn::session&, const xsn::runtime_diagnostic& d) { out.lines.push_back("diagnostic: " + std::string(d.message)); };
  if (general) o.inspect = [](const xsn::inspection_event&) {};
  xsn::session s(chart, ioc.get_executor(), clk, std::move(o));
  REQUIRE_FALSE(s.start());
  seen(s, "started");
  for (const auto& e : events) {
    if (s.process(xsn::event(e))) out.lines.push_back("refused " + e);
    else seen(s, "after " + e);
  }
  out.transitions = s.transitions_taken();
  out.status = s.status();
  return out;
}

/// Runs `chart` both ways and requires the same trace; returns the direct run's.
trace_run same_both_ways(const std::shared_ptr<const xsn::statechart>& chart, const std::vector<std::string>& events,
                         const std::vector<std::string>& unbound = {}) {
  auto direct_run = run_traced(chart, events, false, unbound);
  auto general_run = run_traced(chart, events, true, unbound);
  CHECK(direct_run.lines == general_run.lines);
  CHECK(direct_run.transitions == general_run.transitions);
  CHECK(direct_run.status == general_run.status);
  return direct_run;
}

const char* const regions = R"x(
  <parallel id="p">
    <state id="a" initial="a1">
      <state id="a1"><onentry><xsn:action name="in_a1"/></onentry><transition event="next" target="a2"/></state>
      <state id="a2"><onentry><xsn:action name="in_a2"/><xsn:action name="again_a2"/></onentry>
        <transition event="next" target="a3"/></state>
      <state id="a3" initial="a3x"><onentry><xsn:action name="in_a3"/></onentry>
        <state id="a3x"><onentry><xsn:action name="in_a3x"/></onentry></state>
        <transition event="next" target="a1"/></state>
    </state>
    <state id="b" initial="b1">
      <state id="b1"><onentry><xsn:action name="in_b1"/></onentry><transition event="next" target="b2"/>
        <transition event="guarded" cond="In('a2')" target="b2"/></state>
      <state id="b2"><onentry><xsn:action name="in_b2"/></onentry><transition event="next" target="b1"/>
        <transition event="cross" target="a1"/></state>
    </state>
    <state id="c"><onentry><xsn:action name="in_c"/></onentry><transition event="only_c" target="c"/></state>
    <transition event="reset" target="p"/>
  </parallel>)x";

const char* const xsn_ns = " datamodel=\"null\" xmlns:xsn=\"http://xsn.dev/scxml\"";

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

TEST_CASE("chain_table: charts with parallel states have one answer per active atomic state") {
  const auto c = scxml(R"x(<parallel id="p"><transition event="both" target="p"/>
                            <state id="r1"><transition event="e" target="r1"/><transition event="both" target="r1"/></state>
                            <state id="r2"/></parallel>)x");
  REQUIRE_FALSE(c->chain_next.empty());
  CHECK(c->chain_parallel);
  CHECK(step(*c, "r1", "e") == transition_of(*c, "r1", "e"));
  CHECK(step(*c, "r2", "e") == xsn::statechart::chain_none);
  CHECK(step(*c, "r1", "both") == transition_of(*c, "r1", "both"));
  CHECK(step(*c, "r2", "both") == transition_of(*c, "p", "both"));  // W3C: from r2 up to p
  CHECK(c->chain_slot[c->find_state("p")] == xsn::npos);
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

TEST_CASE("chain_table: entry actions make transitions own_exit but not direct") {
  const auto c = scxml(regions, xsn_ns);
  CHECK(own_exit(*c, transition_of(*c, "a1", "next")));
  CHECK_FALSE(direct(*c, transition_of(*c, "a1", "next")));  // a2 has entry actions
  CHECK_FALSE(own_exit(*c, transition_of(*c, "a3", "next")));  // a3 is compound: it exits a3x too
  CHECK_FALSE(own_exit(*c, transition_of(*c, "c", "only_c")));  // an atomic region: its domain is above p
  CHECK_FALSE(own_exit(*c, transition_of(*c, "b2", "cross")));  // its domain is above the parallel state
  CHECK_FALSE(own_exit(*c, transition_of(*c, "p", "reset")));
}

TEST_CASE("chain_table: parallel regions step directly as the W3C algorithm does") {
  // Entry actions run region by region in document order, each seeing the sources of every region
  // already gone (all exits come first); regions without a transition for the event keep theirs.
  const auto run = same_both_ways(scxml(regions, xsn_ns), {"next", "next", "only_c", "next", "unknown", "next"});
  REQUIRE(run.lines.size() > 8);
  CHECK(run.lines[0] == "in_a1: a1");
  CHECK(std::find(run.lines.begin(), run.lines.end(), "in_a2: a2 c") != run.lines.end());  // b1 already exited
  CHECK(std::find(run.lines.begin(), run.lines.end(), "in_b2: a2 b2 c") != run.lines.end());
  CHECK(run.transitions == 2 + 2 + 1 + 2 + 2);
}

TEST_CASE("chain_table: parallel events that need the general step take it") {
  // A guard (b1's `guarded`), a transition leaving the parallel state (b2's `cross`), one of the
  // parallel state itself (`reset`): each event falls back, and the result is the same.
  same_both_ways(scxml(regions, xsn_ns), {"guarded", "next", "guarded", "cross", "next", "reset", "next", "guarded"});
}

TEST_CASE("chain_table: a region that declines after another was selected leaves the configuration whole") {
  // The direct step exits each source as it finds its transition: a1's here, before b1's guarded
  // one (and then c1's, which leaves the parallel state) sends the event to the general step,
  // which must find a1 still active.
  const auto c = scxml(R"x(<parallel id="p">
      <state id="a" initial="a1">
        <state id="a1"><transition event="next" target="a2"/></state>
        <state id="a2"><onentry><xsn:action name="in_a2"/></onentry><transition event="next" target="a1"/></state>
      </state>
      <state id="b" initial="b1">
        <state id="b1"><transition event="next" cond="In('a1')" target="b2"/><transition event="jump" target="b2"/></state>
        <state id="b2"><onentry><xsn:action name="in_b2"/></onentry><transition event="next" target="b1"/>
          <transition event="jump" target="out"/></state>
      </state></parallel>
      <state id="out"><onentry><xsn:action name="in_out"/></onentry></state>)x", xsn_ns);
  const auto run = same_both_ways(c, {"next", "next", "jump", "next", "jump", "jump"});
  REQUIRE(run.lines.size() > 3);
  CHECK(run.lines[3] == "after next: a2 b2");  // the general step: both regions moved
  CHECK(run.lines.back() == "after jump: out");
}

TEST_CASE("chain_table: an empty onentry is entry content that runs nothing, directly or not") {
  // The only calls-only state of the chart has no action at all: its entry runs the calls table,
  // which must exist (and be empty for it).
  const auto c = scxml(R"x(<state id="off"><transition event="toggle" target="on"/></state>
      <state id="on"><onentry/><transition event="toggle" target="off"/></state>)x", xsn_ns);
  const auto run = same_both_ways(c, {"toggle", "toggle", "toggle"});
  CHECK(run.lines.back() == "after toggle: on");
  const auto p = scxml(R"x(<parallel id="p">
      <state id="a" initial="a1"><state id="a1"><transition event="next" target="a2"/></state>
        <state id="a2"><onentry/><transition event="next" target="a1"/></state></state>
      <state id="b" initial="b1"><state id="b1"><transition event="next" target="b2"/></state>
        <state id="b2"><onentry/><transition event="next" target="b1"/></state></state></parallel>)x", xsn_ns);
  CHECK(same_both_ways(p, {"next", "next", "next"}).lines.back() == "after next: a2 b2");
}

TEST_CASE("chain_table: a failing entry action in a direct step raises its error in the same macrostep") {
  // in_a2 is not bound: error.execution is raised and taken (to `broken`) before the macrostep ends;
  // again_a2, after it in the same block, does not run (W3C 4.9).
  const auto c = scxml(R"x(<parallel id="p">
      <state id="a" initial="a1">
        <state id="a1"><transition event="next" target="a2"/></state>
        <state id="a2"><onentry><xsn:action name="in_a2"/><xsn:action name="again_a2"/></onentry>
          <transition event="error.execution" target="broken"/></state>
        <state id="broken"><onentry><xsn:action name="in_broken"/></onentry></state>
      </state>
      <state id="b" initial="b1">
        <state id="b1"><transition event="next" target="b2"/></state>
        <state id="b2"><onentry><xsn:action name="in_b2"/></onentry></state>
      </state></parallel>)x", xsn_ns);
  const auto run = same_both_ways(c, {"next"}, {"in_a2"});
  CHECK(std::find(run.lines.begin(), run.lines.end(), "in_broken: broken b2") != run.lines.end());
  CHECK(std::none_of(run.lines.begin(), run.lines.end(), [](const std::string& l) { return l.rfind("again_a2", 0) == 0; }));
  CHECK(run.lines.back() == "after next: broken b2");
}

TEST_CASE("chain_table: an entry action that stops the session ends it after the direct step") {
  const auto c = scxml(R"x(<parallel id="p">
      <state id="a" initial="a1">
        <state id="a1"><transition event="next" target="a2"/></state>
        <state id="a2"><onentry><xsn:action name="stop"/></onentry></state>
      </state>
      <state id="b" initial="b1">
        <state id="b1"><transition event="next" target="b2"/></state>
        <state id="b2"><onentry><xsn:action name="in_b2"/></onentry></state>
      </state></parallel>)x", xsn_ns);
  const auto run = same_both_ways(c, {"next", "next"});
  CHECK(run.status == xsn::session_status::stopped);
  CHECK(std::find(run.lines.begin(), run.lines.end(), "refused next") != run.lines.end());
}

TEST_CASE("chain_table: a one-region chart with entry content steps directly too") {
  // own_exit transitions into states with content (a raise, a native action): the raised event is
  // processed in the same macrostep.
  const auto c = scxml(R"x(<state id="off"><transition event="toggle" target="on"/></state>
      <state id="on"><onentry><xsn:action name="in_on"/><raise event="entered"/></onentry>
        <transition event="toggle" target="off"/><transition event="entered" target="settled"/></state>
      <state id="settled"><onentry><xsn:action name="in_settled"/></onentry><transition event="toggle" target="off"/></state>)x",
                       xsn_ns);
  const auto run = same_both_ways(c, {"toggle", "toggle", "toggle"});
  CHECK(run.lines[1] == "in_on: on");
  CHECK(run.lines[2] == "in_settled: settled");
  CHECK(run.lines[3] == "after toggle: settled");
}

TEST_CASE("chain_table: XState parallel regions step directly with their entry actions") {
  const auto chart = xsn_test::xstate_chart(R"x({"id": "m", "type": "parallel", "states": {
    "a": {"initial": "a1", "states": {"a1": {"entry": ["log"], "on": {"next": "a2"}},
                                      "a2": {"entry": ["log", "fail_third"], "on": {"next": "a1", "step": "a1"}}}},
    "b": {"initial": "b1", "states": {"b1": {"entry": ["log"], "on": {"next": "b2"}},
                                      "b2": {"entry": ["log"], "on": {"next": "b1"}}}},
    "c": {"on": {"step": ".c2"}, "initial": "c1", "states": {"c1": {}, "c2": {}}}},
    "on": {"step": ".a.a2"}})x");
  const auto run_once = [&](bool general) {
    std::vector<std::string> log;
    xsn::implementations impl;
    impl.action("log", [&log](xsn::value&, const xsn::event& ev, const xsn::value&) { log.push_back("log " + ev.name); });
    int calls = 0;
    impl.action("fail_third", [&log, &calls](xsn::value&, const xsn::event& ev, const xsn::value&) {
      log.push_back("check " + ev.name);
      if (++calls == 3) throw std::runtime_error("third entry");  // the machine fails (status error)
    });
    xsn_test::session_driver d(chart);
    d.options = [general](xsn::session_options& o) {
      if (general) o.inspect = [](const xsn::inspection_event&) {};
    };
    d.open(xsn::xstate_datamodel(xsn_test::bound(*chart, impl)), false);
    REQUIRE_FALSE(d.s->start());
    for (const char* e : {"next", "next", "step", "next", "step", "next", "next", "next"}) {
      (void)d.s->process(xsn::event(e));
      std::string line = std::string("after ") + e + ":";
      for (const auto& a : d.s->active_atomic_states()) line += " " + a;
      log.push_back(line);
    }
    log.push_back("status " + std::string(xsn::to_string(d.s->status())));
    return log;
  };
  const auto direct_log = run_once(false);
  CHECK(direct_log == run_once(true));
  CHECK(std::find(direct_log.begin(), direct_log.end(), "check next") != direct_log.end());
  CHECK(direct_log.back() == "status error");
}
