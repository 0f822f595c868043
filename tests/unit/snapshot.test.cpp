#include <xsn/runtime/session.hpp>

#include "catch.hpp"

#include <xsn/parse/scxml.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <set>
#include <string>
#include <vector>

namespace {

std::shared_ptr<const xsn::statechart> chart(const std::string& body, const std::string& attrs) {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">" + body + "</scxml>",
                            "snap.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

/// One step of a scenario: send an event, or let time pass.
struct step {
  std::string event;
  int advance_ms = 0;
};

/// A session with its own executor and manual clock.
struct runner {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::unique_ptr<xsn::session> s;

  explicit runner(std::shared_ptr<const xsn::statechart> c) {
    s = std::make_unique<xsn::session>(std::move(c), ioc.get_executor(), clk);
  }
  void settle() {
    ioc.restart();
    ioc.poll();
  }
  void apply(const step& st) {
    settle();
    if (!st.event.empty()) (void)s->send(xsn::event(st.event));
    auto target = clk.now() + std::chrono::milliseconds(st.advance_ms);
    settle();
    while (clk.fire_next(target)) settle();
    clk.advance_to(target);
    settle();
  }
  /// What must be identical between an interrupted and an uninterrupted run.
  std::string observe() {
    auto snap = s->snapshot();
    auto& o = snap.as_object();
    std::string children;
    for (auto& [id, child] : o["children"].as_object()) {
      auto& cs = child.as_object()["snapshot"].as_object();
      children += std::string(id) + "=" + boost::json::serialize(cs["configuration"]) + boost::json::serialize(cs["context"]) + ";";
    }
    return boost::json::serialize(o["configuration"]) + " " + boost::json::serialize(o["context"]) + " " +
           boost::json::serialize(o["historyValue"]) + " " + boost::json::serialize(o["status"]) + " " + children;
  }
};

/// Runs `steps` uninterrupted, then once per step index k: run k steps, snapshot through text,
/// restore into a fresh session with a fresh clock, run the rest; every observation must match.
void check_restore_everywhere(const std::shared_ptr<const xsn::statechart>& c, const std::vector<step>& steps) {
  std::vector<std::string> expected;
  {
    runner r(c);
    r.s->start();
    expected.push_back(r.observe());
    for (const auto& st : steps) {
      r.apply(st);
      expected.push_back(r.observe());
    }
  }
  // The scenario must exercise something: the observed state changes along the way.
  REQUIRE(std::set<std::string>(expected.begin(), expected.end()).size() >= 3);
  for (std::size_t k = 0; k <= steps.size(); ++k) {
    INFO("restored after step " << k);
    std::string text;
    {
      runner r(c);
      r.s->start();
      for (std::size_t i = 0; i < k; ++i) r.apply(steps[i]);
      text = boost::json::serialize(r.s->snapshot());
    }
    runner r(c);
    REQUIRE_FALSE(r.s->restore(boost::json::parse(text)));
    CHECK(r.observe() == expected[k]);
    for (std::size_t i = k; i < steps.size(); ++i) {
      r.apply(steps[i]);
      CHECK(r.observe() == expected[i + 1]);
    }
  }
}

}  // namespace

TEST_CASE("snapshots restore at every step: ecmascript counters, history, parallel and timers") {
  auto c = chart(R"(<datamodel><data id="n" expr="0"/><data id="log" expr="[]"/></datamodel>
    <state id="main" initial="idle">
      <history id="h" type="deep"><transition target="idle"/></history>
      <state id="idle"><onentry><assign location="n" expr="n + 1"/></onentry>
        <transition event="go" target="work"/></state>
      <parallel id="work">
        <onentry><send id="t" event="tick" delay="250ms"/></onentry>
        <onexit><cancel sendid="t"/></onexit>
        <state id="a"><state id="a1"><transition event="tick" target="a2"><script>log.push('tick')</script></transition></state><state id="a2"/></state>
        <state id="b"><state id="b1"><transition event="flip" target="b2"/></state><state id="b2"><transition event="flip" target="b1"/></state></state>
      </parallel>
      <transition event="pause" target="paused"/>
    </state>
    <state id="paused"><transition event="resume" target="h"/><transition event="quit" target="end"/></state>
    <final id="end"/>)", " datamodel=\"ecmascript\"");
  check_restore_everywhere(c, {{"go", 100}, {"flip", 100}, {"", 100}, {"pause", 0}, {"resume", 0}, {"flip", 300},
                               {"pause", 0}, {"quit", 0}});
}

TEST_CASE("snapshots restore at every step: an invoked child with its own timer") {
  auto c = chart(R"(<datamodel><data id="beats" expr="0"/></datamodel>
    <state id="s"><invoke id="kid"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript">
      <datamodel><data id="k" expr="0"/></datamodel>
      <state id="c1"><onentry><send event="beat" delay="1s"/></onentry>
        <transition event="beat" target="c1"><assign location="k" expr="k + 1"/><send target="#_parent" event="beat.parent"/></transition>
        <transition event="stop" target="cf"/></state><final id="cf"/></scxml></content></invoke>
      <transition event="beat.parent" cond="beats &lt; 2"><assign location="beats" expr="beats + 1"/></transition>
      <transition event="beat.parent" target="s2"/></state>
    <state id="s2"/>)", " datamodel=\"ecmascript\"");
  check_restore_everywhere(c, {{"", 700}, {"", 700}, {"", 1000}, {"", 1000}});
}

TEST_CASE("malformed snapshots are refused and change nothing") {
  auto c = chart(R"(<state id="a"><transition event="e" target="b"/></state><state id="b"/>)", "");
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  const char* bad[] = {
      R"(42)",
      R"({"configuration": "a"})",
      R"({"configuration": ["nope"]})",
      R"({"configuration": ["a", "b"]})",
      R"({"configuration": ["a"], "historyValue": {"a": ["b"]}})",
      R"({"configuration": ["a"], "pending": [{"event": {"name": 1}, "remaining_ns": 5}]})",
      R"({"configuration": ["a"], "pending": [{"event": {"name": "x"}, "remaining_ns": -5}]})",
      R"({"configuration": ["a"], "queue": [{"type": "external"}]})",
      R"({"configuration": ["a"], "children": {"x": {"invoke": 7, "snapshot": {}}}})",
  };
  for (const char* text : bad) {
    INFO(text);
    xsn::session s(c, ioc.get_executor(), clk);
    CHECK(s.restore(boost::json::parse(text)) == xsn::errc::bad_snapshot);
    CHECK(s.configuration().empty());
    s.start();  // still usable as a fresh session
    CHECK(s.active_atomic_states() == std::vector<std::string>{"a"});
  }
}
