#include <xsn/runtime/session.hpp>

#include "catch.hpp"

#include <xsn/config.hpp>
#include <xsn/parse/scxml.hpp>

#include <boost/asio/io_context.hpp>

#include <string>
#include <vector>

namespace {

std::shared_ptr<const xsn::statechart> chart(const std::string& body, const std::string& attrs = "") {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" xmlns:xsn=\"http://xsn.dev/scxml\" version=\"1.0\"" +
                                attrs + ">" + body + "</scxml>",
                            "test.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

/// A session on a private io_context and manual clock; `settle` runs every ready handler.
struct harness {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::vector<std::string> log;
  std::unique_ptr<xsn::session> s;

  explicit harness(std::shared_ptr<const xsn::statechart> c, xsn::session_options o = {}) {
    o.on_log = [this](std::string_view label, std::string_view msg) { log.push_back(std::string(label) + ":" + std::string(msg)); };
    s = std::make_unique<xsn::session>(std::move(c), ioc.get_executor(), clk, std::move(o));
    s->start();
    settle();
  }
  void settle() {
    ioc.restart();
    ioc.poll();
  }
  void send(const std::string& name) {
    REQUIRE_FALSE(s->send(xsn::event(name)));
    settle();
  }
  void advance(std::chrono::milliseconds d) {
    auto target = clk.now() + d;
    while (clk.fire_next(target)) settle();
    clk.advance_to(target);
  }
  std::string states() const {
    std::string out;
    for (const auto& id : s->active_atomic_states()) out += (out.empty() ? "" : " ") + id;
    return out;
  }
};

}  // namespace

TEST_CASE("toggle: external events move between states") {
  harness h(chart(R"(<state id="off"><transition event="toggle" target="on"/></state><state id="on"><transition event="toggle" target="off"/></state>)"));
  CHECK(h.states() == "off");
  h.send("toggle");
  CHECK(h.states() == "on");
  h.send("unrelated");
  CHECK(h.states() == "on");
  REQUIRE_FALSE(h.s->process(xsn::event("toggle")));
  CHECK(h.states() == "off");
}

TEST_CASE("parallel regions advance together and run entry actions in document order") {
  std::vector<std::string> order;
  xsn::session_options o;
  o.actions["a"] = [&](xsn::session&) { order.push_back("a"); };
  o.actions["b"] = [&](xsn::session&) { order.push_back("b"); };
  harness h(chart(R"(<parallel id="p">
    <state id="A"><state id="a1"><onentry><xsn:action name="a"/></onentry><transition event="next" target="a2"/></state><state id="a2"><onentry><xsn:action name="a"/></onentry></state></state>
    <state id="B"><state id="b1"><onentry><xsn:action name="b"/></onentry><transition event="next" target="b2"/></state><state id="b2"><onentry><xsn:action name="b"/></onentry></state></state>
  </parallel>)"), std::move(o));
  CHECK(h.states() == "a1 b1");
  h.send("next");
  CHECK(h.states() == "a2 b2");
  CHECK(order == std::vector<std::string>{"a", "b", "a", "b"});
}

TEST_CASE("raised events are processed before the next external event, in order") {
  harness h(chart(R"(<state id="s0"><onentry><raise event="foo"/><raise event="bar"/></onentry>
    <transition event="foo" target="s1"/><transition event="*" target="fail"/></state>
    <state id="s1"><transition event="bar" target="pass"/><transition event="*" target="fail"/></state>
    <final id="pass"/><final id="fail"/>)"));
  CHECK(h.states() == "pass");
  CHECK_FALSE(h.s->running());
  CHECK(h.s->send(xsn::event("x")) == xsn::errc::not_running);
}

TEST_CASE("done.state events for compound and parallel states") {
  harness h(chart(R"(<state id="top"><parallel id="p">
      <state id="r1"><state id="r1a"><transition event="e" target="r1f"/></state><final id="r1f"/></state>
      <state id="r2"><final id="r2f"/></state></parallel>
    <transition event="done.state.p" target="pass"/></state><final id="pass"/>)"));
  CHECK(h.states() == "r1a r2f");
  h.send("e");
  CHECK(h.states() == "pass");
}

TEST_CASE("shallow and deep history restore the configuration") {
  auto c = chart(R"(<state id="main" initial="A"><history id="hs"><transition target="A"/></history><history id="hd" type="deep"><transition target="A"/></history>
      <state id="A" initial="A1"><state id="A1"><transition event="next" target="A2"/></state><state id="A2"/></state>
      <transition event="out" target="away"/></state>
    <state id="away"><transition event="back.shallow" target="hs"/><transition event="back.deep" target="hd"/></state>)");
  harness h(c);
  h.send("next");
  CHECK(h.states() == "A2");
  h.send("out");
  CHECK(h.states() == "away");
  h.send("back.deep");
  CHECK(h.states() == "A2");
  h.send("out");
  h.send("back.shallow");
  CHECK(h.states() == "A1");  // shallow history re-enters A by its default
}

TEST_CASE("conflicting transitions: the descendant's transition preempts") {
  harness h(chart(R"(<parallel id="p"><state id="a"><transition event="e" target="x"/></state><state id="b"><transition event="e" target="y"/></state></parallel>
    <state id="x"/><state id="y"/>)"));
  h.send("e");
  CHECK(h.states() == "x");  // document order wins between non-nested sources
}

TEST_CASE("eventless transitions with In() on the null datamodel") {
  harness h(chart(R"sc(<parallel id="p"><state id="a"><state id="a1"><transition event="go" target="a2"/></state><state id="a2"/></state>
    <state id="b"><state id="b1"><transition cond="In('a2')" target="b2"/></state><state id="b2"/></state></parallel>)sc"));
  CHECK(h.states() == "a1 b1");
  h.send("go");
  CHECK(h.states() == "a2 b2");
}

TEST_CASE("delayed send fires when the manual clock reaches it, and cancel stops it") {
  harness h(chart(R"(<state id="s"><onentry><send event="timeout" delay="1s"/><send id="c" event="cancelled" delay="500ms"/></onentry>
    <transition event="stop" target="s2"/><transition event="timeout" target="late"/><transition event="cancelled" target="bad"/></state>
    <state id="s2"><onentry><cancel sendid="c"/></onentry><transition event="timeout" target="done"/><transition event="cancelled" target="bad"/></state>
    <final id="done"/><final id="late"/><final id="bad"/>)"));
  h.advance(std::chrono::milliseconds(100));
  CHECK(h.states() == "s");
  h.send("stop");
  h.advance(std::chrono::milliseconds(899));
  CHECK(h.states() == "s2");
  h.advance(std::chrono::milliseconds(1));
  CHECK(h.states() == "done");
  CHECK(h.clk.pending() == 0);
}

TEST_CASE("an endless eventless loop ends the macrostep instead of hanging") {
  xsn::session_options o;
  o.microstep_budget = 1000;
  harness h(chart(R"(<state id="a"><transition target="b"/></state><state id="b"><transition target="a"/></state>)"), std::move(o));
  CHECK(h.s->running());
  CHECK_FALSE(h.log.empty());
}

TEST_CASE("the external queue is bounded") {
  xsn::session_options o;
  o.queue_capacity = 2;
  harness h(chart(R"(<state id="a"/>)"), std::move(o));
  CHECK_FALSE(h.s->send(xsn::event("1")));
  CHECK_FALSE(h.s->send(xsn::event("2")));
  CHECK(h.s->send(xsn::event("3")) == xsn::errc::queue_full);
  h.settle();
  CHECK(h.s->queued() == 0);
  CHECK_FALSE(h.s->send(xsn::event("4")));  // accepted again once drained
}

TEST_CASE("an unbound native action raises error.execution") {
  harness h(chart(R"(<state id="a"><onentry><xsn:action name="missing"/></onentry><transition event="error.execution" target="b"/></state><state id="b"/>)"));
  CHECK(h.states() == "b");
}

TEST_CASE("null datamodel rejects value expressions with error.execution") {
  harness h(chart(R"(<state id="a"><transition cond="x &gt; 1" target="bad"/><transition event="error.execution" target="good"/></state><state id="bad"/><state id="good"/>)"));
  CHECK(h.states() == "good");
}

TEST_CASE("invoked child sessions communicate with the parent and report done") {
  harness h(chart(R"(<state id="s"><invoke id="child"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" initial="c">
      <state id="c"><onentry><send target="#_parent" event="hello"/></onentry><transition event="bye" target="cf"/></state><final id="cf"/></scxml></content></invoke>
    <transition event="hello" target="s2"/></state>
    <state id="s2"><onentry><send target="#_child" event="bye"/></onentry><transition event="done.invoke.child" target="pass"/></state>
    <final id="pass"/>)"));
  CHECK(h.states() == "s2");
  // s2 is entered by exiting s, which cancels the invocation: bye cannot be delivered.
}

TEST_CASE("stop() from inside a macrostep cancels the session without a done event") {
  bool done_called = false;
  xsn::session_options o;
  o.actions["halt"] = [](xsn::session& s) { s.stop(); };
  o.on_done = [&](xsn::session&, const xsn::value&) { done_called = true; };
  harness h(chart(R"(<state id="a"><transition event="halt" target="b"/></state><state id="b"><onentry><xsn:action name="halt"/></onentry></state>)"), std::move(o));
  h.send("halt");
  CHECK_FALSE(h.s->running());
  CHECK(done_called);
  CHECK(h.states().empty());  // cancelled: every state was exited
}

TEST_CASE("a top-level final state ends the session and keeps its configuration") {
  xsn::value done_data;
  xsn::session_options o;
  o.on_done = [&](xsn::session&, const xsn::value& d) { done_data = d; };
  harness h(chart(R"(<state id="a"><transition event="finish" target="end"/></state><final id="end"/>)"), std::move(o));
  h.send("finish");
  CHECK_FALSE(h.s->running());
  CHECK(h.states() == "end");
  CHECK(done_data.is_null());
}

#if XSN_WITH_ECMASCRIPT
TEST_CASE("XML content reaches ECMAScript as a DOM and is logged as markup") {
  harness h(chart(R"(<datamodel><data id="d"><books xmlns=""><book title="t1"/></books></data></datamodel>
    <state id="s"><onentry><log label="d" expr="d"/><log label="b" expr="d.getElementsByTagName('book')[0]"/>
        <send event="e"><content><r xmlns="" a="1"><i/></r></content></send></onentry>
      <transition event="e" cond="_event.data.documentElement.getAttribute('a') === '1'" target="pass"/>
      <transition event="e" target="fail"/></state>
    <final id="pass"/><final id="fail"/>)",
                  R"( datamodel="ecmascript" initial="s")"));
  CHECK(h.states() == "pass");
  CHECK(h.log == std::vector<std::string>{R"(d:<books xmlns=""><book title="t1"/></books>)",
                                          R"(b:<book title="t1"/>)"});
}
#endif
