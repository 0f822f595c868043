#include <xsn/runtime/inspection.hpp>

#include "catch.hpp"

#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

std::shared_ptr<const xsn::statechart> chart(const std::string& body, const std::string& attrs = "") {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" xmlns:xsn=\"http://xsn.dev/scxml\" version=\"1.0\"" +
                                attrs + ">" + body + "</scxml>",
                            "inspect.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

/// Records the inspection stream as text lines; session ids become `root`, `child1`, ... in order
/// of appearance, so the stream does not depend on generated ids.
struct recorder {
  std::vector<std::string> lines;
  std::map<std::string, std::string, std::less<>> alias;

  std::string name(std::string_view id) {
    if (id.empty()) return "-";
    auto it = alias.find(id);
    if (it == alias.end()) it = alias.emplace(std::string(id), alias.empty() ? "root" : "child" + std::to_string(alias.size())).first;
    return it->second;
  }
  void operator()(const xsn::inspection_event& e) {
    std::string line = std::string(e.type()) + " " + name(e.session_id);
    CHECK(e.actor != nullptr);
    CHECK(e.chart != nullptr);
    CHECK(name(e.root_id) == "root");
    switch (e.kind) {
      case xsn::inspection_kind::actor:
        line += " parent=" + name(e.parent_id);
        break;
      case xsn::inspection_kind::event:
        line += " " + e.event->name + " from " + name(e.source_id);
        break;
      case xsn::inspection_kind::snapshot:
        line += " " + e.event->name + " " + boost::json::serialize(*e.snapshot);
        break;
      case xsn::inspection_kind::microstep: {
        line += " " + e.event->name + ":";
        for (auto ti : e.transitions) {
          const auto& t = e.chart->transitions[ti];
          line += " " + (t.source == xsn::npos ? std::string("?") : e.chart->states[t.source].id) + "->";
          for (auto s : t.targets) line += e.chart->states[s].id + ",";
        }
        line += " " + boost::json::serialize(e.snapshot->at("value"));
        break;
      }
      case xsn::inspection_kind::action:
        line += " " + std::string(e.action_type) + " " + boost::json::serialize(*e.action_params);
        break;
      case xsn::inspection_kind::diagnostic:
        line += " " + std::string(xsn::to_string(e.diagnostic->kind)) + " " + std::string(e.diagnostic->event);
        break;
    }
    lines.push_back(std::move(line));
  }
};

struct harness {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::shared_ptr<recorder> rec = std::make_shared<recorder>();
  std::unique_ptr<xsn::session> s;

  explicit harness(std::shared_ptr<const xsn::statechart> c, xsn::session_options o = {}) {
    o.inspect = [r = rec](const xsn::inspection_event& e) { (*r)(e); };
    o.session_id = "root-session";
    s = std::make_unique<xsn::session>(std::move(c), ioc.get_executor(), clk, std::move(o));
  }
  void settle() {
    ioc.restart();
    ioc.poll();
  }
  void advance(std::chrono::milliseconds d) {
    auto target = clk.now() + d;
    settle();
    while (clk.fire_next(target)) settle();
    clk.advance_to(target);
    settle();
  }
  std::vector<std::string> take() { return std::exchange(rec->lines, {}); }
};

const char* machine = R"(
  <state id="idle">
    <onentry><log label="enter idle"/></onentry>
    <onexit><log label="exit idle"/></onexit>
    <transition event="go" target="busy"><raise event="started"/></transition>
  </state>
  <state id="busy">
    <onentry><send id="t" event="timeout" delay="1s"/></onentry>
    <invoke id="kid"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0">
      <state id="k1"><transition event="finish" target="kdone"/></state><final id="kdone"/></scxml></content></invoke>
    <transition event="started"/>
    <transition event="finish"><send target="#_kid" event="finish"/></transition>
    <transition event="done.invoke.kid"><log label="child done"/></transition>
    <transition event="timeout" target="idle"/>
  </state>)";

}  // namespace

TEST_CASE("inspection: the exact stream of a machine with actions, raise, a delayed send and a child") {
  harness h(chart(machine));
  h.s->start();
  h.settle();
  CHECK(h.take() == std::vector<std::string>{
      "@xstate.actor root parent=-",
      "@xstate.event root xstate.init from -",
      "@xstate.action root log {\"label\":\"enter idle\"}",
      "@xstate.microstep root xstate.init: ->idle, \"idle\"",
      "@xstate.snapshot root xstate.init {\"status\":\"active\",\"value\":\"idle\",\"context\":{}}",
  });
  REQUIRE_FALSE(h.s->send(xsn::event("go")));
  h.settle();
  CHECK(h.take() == std::vector<std::string>{
      "@xstate.event root go from -",
      "@xstate.action root log {\"label\":\"exit idle\"}",
      "@xstate.action root raise {\"event\":\"started\"}",
      "@xstate.action root send {\"event\":\"timeout\",\"id\":\"t\",\"delay\":1000}",
      "@xstate.microstep root go: idle->busy, \"busy\"",
      "@xstate.microstep root started: busy-> \"busy\"",
      "@xstate.actor child1 parent=root",
      "@xstate.event child1 xstate.init from root",
      "@xstate.microstep child1 xstate.init: ->k1, \"k1\"",
      "@xstate.snapshot child1 xstate.init {\"status\":\"active\",\"value\":\"k1\",\"context\":{}}",
      "@xstate.snapshot root go {\"status\":\"active\",\"value\":\"busy\",\"context\":{}}",
  });
  REQUIRE_FALSE(h.s->send(xsn::event("finish")));
  h.settle();
  CHECK(h.take() == std::vector<std::string>{
      "@xstate.event root finish from -",
      "@xstate.action root send {\"event\":\"finish\",\"target\":\"#_kid\"}",
      "@xstate.microstep root finish: busy-> \"busy\"",
      "@xstate.snapshot root finish {\"status\":\"active\",\"value\":\"busy\",\"context\":{}}",
      "@xstate.event child1 finish from root",
      "@xstate.microstep child1 finish: k1->kdone, \"kdone\"",
      "@xstate.snapshot child1 finish {\"status\":\"done\",\"value\":\"kdone\",\"context\":{}}",
      "@xstate.event root done.invoke.kid from child1",
      "@xstate.action root log {\"label\":\"child done\"}",
      "@xstate.microstep root done.invoke.kid: busy-> \"busy\"",
      "@xstate.snapshot root done.invoke.kid {\"status\":\"active\",\"value\":\"busy\",\"context\":{}}",
  });
  h.advance(std::chrono::seconds(1));
  CHECK(h.take() == std::vector<std::string>{
      "@xstate.event root timeout from root",
      "@xstate.action root log {\"label\":\"enter idle\"}",
      "@xstate.microstep root timeout: busy->idle, \"idle\"",
      "@xstate.snapshot root timeout {\"status\":\"active\",\"value\":\"idle\",\"context\":{}}",
  });
  // Leaving `busy` while the child runs stops it: its last snapshot says so.
  REQUIRE_FALSE(h.s->send(xsn::event("go")));
  h.settle();
  h.take();
  REQUIRE_FALSE(h.s->send(xsn::event("timeout")));
  h.settle();
  auto lines = h.take();
  CHECK(std::find(lines.begin(), lines.end(),
                  "@xstate.snapshot child2 xstate.stop {\"status\":\"stopped\",\"value\":{},\"context\":{}}") != lines.end());
  h.s->stop();
  CHECK(h.take() == std::vector<std::string>{
      "@xstate.action root log {\"label\":\"exit idle\"}",
      "@xstate.snapshot root xstate.stop {\"status\":\"stopped\",\"value\":{},\"context\":{}}",
  });
}

TEST_CASE("inspection: datamodel variables in snapshots, nested actions, XState-shaped JSON") {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::vector<xsn::value> json;
  xsn::session_options o;
  o.session_id = "m1";
  o.inspect = [&](const xsn::inspection_event& e) { json.push_back(xsn::to_json(e)); };
  xsn::session s(chart(R"(<datamodel><data id="n" expr="0"/></datamodel>
    <state id="a"><transition event="inc" target="b">
      <if cond="n == 0"><assign location="n" expr="n + 1"/><else/><log label="never"/></if></transition></state>
    <state id="b"/>)", " datamodel=\"ecmascript\""), ioc.get_executor(), clk, std::move(o));
  s.start();
  CHECK(json.size() == 4);  // actor, event, microstep, snapshot
  json.clear();
  REQUIRE_FALSE(s.process(xsn::event("inc", xsn::value(boost::json::object{{"by", 1}}))));
  std::vector<std::string> text;
  for (const auto& j : json) text.push_back(boost::json::serialize(j));
  CHECK(text == std::vector<std::string>{
      R"({"type":"@xstate.event","rootId":"m1","actorRef":{"sessionId":"m1"},"sourceRef":null,"event":{"type":"inc","data":{"by":1}}})",
      R"({"type":"@xstate.action","rootId":"m1","actorRef":{"sessionId":"m1"},"action":{"type":"if","params":{}}})",
      R"({"type":"@xstate.action","rootId":"m1","actorRef":{"sessionId":"m1"},"action":{"type":"assign","params":{"location":"n","expr":"n + 1"}}})",
      R"({"type":"@xstate.microstep","rootId":"m1","actorRef":{"sessionId":"m1"},"event":{"type":"inc","data":{"by":1}},"snapshot":{"status":"active","value":"b","context":{"n":1}},"_transitions":[{"source":"a","target":["b"],"eventType":"inc"}]})",
      R"({"type":"@xstate.snapshot","rootId":"m1","actorRef":{"sessionId":"m1"},"event":{"type":"inc","data":{"by":1}},"snapshot":{"status":"active","value":"b","context":{"n":1}}})",
  });
}

TEST_CASE("inspection: a restored session and its restored child announce themselves") {
  std::string text;
  {
    harness h(chart(machine));
    h.s->start();
    REQUIRE_FALSE(h.s->send(xsn::event("go")));
    h.settle();
    text = boost::json::serialize(h.s->snapshot());
  }
  harness h(chart(machine));
  REQUIRE_FALSE(h.s->restore_json(text));
  CHECK(h.take() == std::vector<std::string>{"@xstate.actor root parent=-", "@xstate.actor child1 parent=root"});
}

TEST_CASE("inspection: every kind has XState's type name") {
  CHECK(xsn::inspection_type_name(xsn::inspection_kind::actor) == "@xstate.actor");
  CHECK(xsn::inspection_type_name(xsn::inspection_kind::event) == "@xstate.event");
  CHECK(xsn::inspection_type_name(xsn::inspection_kind::snapshot) == "@xstate.snapshot");
  CHECK(xsn::inspection_type_name(xsn::inspection_kind::microstep) == "@xstate.microstep");
  CHECK(xsn::inspection_type_name(xsn::inspection_kind::action) == "@xstate.action");
}

TEST_CASE("inspection: an XState machine reports its named actions with their params") {
  auto parsed = xsn::parse_xstate(R"({"id": "m", "initial": "a", "context": {"n": 0}, "states": {
      "a": {"on": {"GO": {"target": "b", "actions": {"type": "inc", "params": {"by": 2}}}}},
      "b": {"entry": "inc"}}})",
                                  "inspect.json");
  INFO((parsed.errors.empty() ? std::string() : parsed.errors.front().to_string()));
  REQUIRE(parsed);
  xsn::implementations impl;
  impl.action("inc", [](xsn::value& ctx, const xsn::event&, const xsn::value& params) {
    auto by = params.is_object() ? params.at("by").to_number<std::int64_t>() : 1;
    ctx.as_object()["n"] = ctx.at("n").to_number<std::int64_t>() + by;
  });
  auto bound = xsn::bind(*parsed.chart, impl);
  REQUIRE(bound);
  xsn::session_options o;
  o.make_datamodel = xsn::xstate_datamodel(*bound);
  harness h(parsed.chart, std::move(o));
  h.s->start();
  h.take();
  REQUIRE_FALSE(h.s->process(xsn::event("GO")));
  CHECK(h.take() == std::vector<std::string>{
      "@xstate.event root GO from -",
      "@xstate.action root inc {\"by\":2}",
      "@xstate.action root inc {}",
      "@xstate.microstep root GO: m.a->m.b, \"b\"",
      "@xstate.snapshot root GO {\"status\":\"active\",\"value\":\"b\",\"context\":{\"n\":3}}",
  });
}
