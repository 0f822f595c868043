// Snapshots restore at every step: for several machines, a fixed script of events and time runs
// uninterrupted; then, for every step k, a run stopped after k steps is snapshotted to JSON text,
// restored into a brand-new session on a new clock set to the same time, and continued; its
// configuration, datamodel, history, timers, queue and children must match the uninterrupted run
// after every later step.
#include <xsn/runtime/session.hpp>

#include "catch.hpp"

#include <xsn/config.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

std::shared_ptr<const xsn::statechart> chart(const std::string& body, const std::string& attrs = "") {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">" + body + "</scxml>",
                            "replay.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

/// One step of a script: send events, then let time pass. With `leave_queued`, the events stay
/// in the queue when the step ends (so a snapshot taken then holds them).
struct step {
  std::vector<std::string> events;
  int advance_ms = 0;
  bool leave_queued = false;
};

/// What must be identical between runs, from a snapshot: everything but generated ids.
boost::json::value observed(const boost::json::value& snap) {
  const auto& o = snap.as_object();
  boost::json::object out;
  for (const char* k : {"status", "value", "configuration", "context", "historyValue", "entered"})
    if (const auto* v = o.if_contains(k)) out[k] = *v;
  boost::json::array pending;
  if (const auto* p = o.if_contains("pending"))
    for (const auto& x : p->as_array())
      pending.push_back(boost::json::object{{"event", x.at("event").at("name")},
                                            {"data", x.at("event").as_object().contains("data") ? x.at("event").at("data") : nullptr},
                                            {"remaining_ns", x.at("remaining_ns")}, {"target", x.at("target")}});
  out["pending"] = std::move(pending);
  boost::json::array queue;
  if (const auto* q = o.if_contains("queue"))
    for (const auto& x : q->as_array()) queue.push_back(x.at("name"));
  out["queue"] = std::move(queue);
  boost::json::object children;
  for (const auto& [id, ch] : o.at("children").as_object()) children[id] = observed(ch.at("snapshot"));
  out["children"] = std::move(children);
  return out;
}

/// A session with its own executor and manual clock, starting at `start_ns`.
struct runner {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::unique_ptr<xsn::session> s;
  std::vector<std::string> errors;  // `on_log` output labelled `error`

  runner(std::shared_ptr<const xsn::statechart> c, std::chrono::nanoseconds start, xsn::datamodel_factory dm = {}) {
    clk.advance_to(xsn::clock::time_point(start));
    xsn::session_options o;
    o.make_datamodel = std::move(dm);
    // Wall-clock script budgets are not what is tested here; on a loaded machine 1 s can pass
    // while a process waits for a CPU.
    o.limits.time_budget = std::chrono::minutes(5);
    o.session_id = "root";
    o.on_log = [this](std::string_view label, std::string_view msg) {
      if (label == "error") errors.emplace_back(msg);
    };
    s = std::make_unique<xsn::session>(std::move(c), ioc.get_executor(), clk, std::move(o));
  }
  void settle() {
    ioc.restart();
    ioc.poll();
  }
  void apply(const step& st) {
    settle();
    for (const auto& e : st.events) REQUIRE_FALSE(s->send(xsn::event(e)));
    if (st.leave_queued) return;
    settle();
    auto target = clk.now() + std::chrono::milliseconds(st.advance_ms);
    while (clk.fire_next(target)) settle();
    clk.advance_to(target);
    settle();
  }
  std::string observe() { return boost::json::serialize(observed(s->snapshot())); }
};

void replay_everywhere(const std::shared_ptr<const xsn::statechart>& c, const std::vector<step>& steps,
                       const xsn::datamodel_factory& dm = {}) {
  std::vector<std::string> expected;
  {
    runner r(c, {}, dm);
    r.s->start();
    expected.push_back(r.observe());
    for (const auto& st : steps) {
      r.apply(st);
      expected.push_back(r.observe());
    }
  }
  // The script exercises the machine: what is observed changes along the way.
  REQUIRE(std::set<std::string>(expected.begin(), expected.end()).size() >= steps.size() / 2);
  for (std::size_t k = 0; k <= steps.size(); ++k) {
    INFO("restored after step " << k);
    std::string text;
    std::chrono::nanoseconds now{};
    {
      runner r(c, {}, dm);
      r.s->start();
      for (std::size_t i = 0; i < k; ++i) r.apply(steps[i]);
      text = boost::json::serialize(r.s->snapshot());
      now = r.clk.now().time_since_epoch();
    }
    runner r(c, now, dm);
    REQUIRE_FALSE(r.s->restore_json(text));
    REQUIRE(r.observe() == expected[k]);
    for (std::size_t i = k; i < steps.size(); ++i) {
      INFO("step " << i);
      r.apply(steps[i]);
      REQUIRE(r.observe() == expected[i + 1]);
    }
  }
}

// ---- the machines ----

/// Null datamodel: parallel regions, deep and shallow history, delayed sends and cancel, In().
const char* null_machine = R"xml(
  <state id="main" initial="idle">
    <history id="deep" type="deep"><transition target="idle"/></history>
    <state id="idle"><transition event="go" target="work"/></state>
    <parallel id="work">
      <onentry><send id="tick" event="tick" delay="300ms"/></onentry>
      <onexit><cancel sendid="tick"/></onexit>
      <state id="left" initial="l1">
        <history id="shallow"><transition target="l1"/></history>
        <state id="l1"><transition event="tick" target="l2"/></state>
        <state id="l2"><onentry><send event="tock" delay="200ms"/></onentry><transition event="tock" target="l3"/></state>
        <state id="l3"/>
      </state>
      <state id="right" initial="r1">
        <state id="r1"><transition event="flip" target="r2"/></state>
        <state id="r2"><transition event="flip" target="r1"/><transition event="tock" cond="In('l2')" target="r3"/></state>
        <state id="r3"/>
      </state>
    </parallel>
    <transition event="pause" target="paused"/>
  </state>
  <state id="paused"><transition event="resume" target="deep"/><transition event="quit" target="end"/></state>
  <final id="end"/>)xml";

const std::vector<step> null_script = {
    {{"go"}, 100},  {{"flip"}, 250}, {{}, 100},      {{"pause"}, 0},     {{"resume"}, 0}, {{"flip"}, 500},
    {{"pause"}, 0}, {{"resume"}, 0}, {{"flip", "flip"}, 0, true}, {{}, 50}, {{"pause", "quit"}, 0}};

/// ECMAScript: data, history, parallel, delayexpr timers, foreach, queued events.
const char* ecma_machine = R"xml(
  <datamodel><data id="n" expr="0"/><data id="log" expr="[]"/><data id="cfg">{"step": 150, "names": ["a", "b"]}</data></datamodel>
  <state id="main" initial="idle">
    <history id="h" type="deep"><transition target="idle"/></history>
    <state id="idle"><onentry><assign location="n" expr="n + 1"/></onentry>
      <transition event="go" target="work"/></state>
    <parallel id="work">
      <onentry><send id="t" event="tick" delayexpr="cfg.step + 'ms'"><param name="at" expr="n"/></send></onentry>
      <onexit><cancel sendid="t"/></onexit>
      <state id="a"><state id="a1"><transition event="tick" target="a2">
        <foreach array="cfg.names" item="x"><script>log.push(x + _event.data.at)</script></foreach></transition></state>
        <state id="a2"><transition event="tick" target="a1"/></state></state>
      <state id="b"><state id="b1"><transition event="flip" target="b2"><assign location="cfg.step" expr="cfg.step * 2"/></transition></state>
        <state id="b2"><onentry><send id="t" event="tick" delayexpr="cfg.step + 'ms'"><param name="at" expr="-n"/></send></onentry>
          <transition event="flip" target="b1"/></state></state>
    </parallel>
    <transition event="pause" target="paused"/>
  </state>
  <state id="paused"><transition event="resume" target="h"/><transition event="quit" target="end"/></state>
  <final id="end"/>)xml";

const std::vector<step> ecma_script = {
    {{"go"}, 100},   {{"flip"}, 100},  {{}, 250},  {{"pause"}, 0},           {{"resume"}, 0},    {{"flip"}, 700},
    {{"flip"}, 100}, {{"pause", "resume", "flip"}, 0, true},      {{}, 600}, {{"pause"}, 0}, {{"quit"}, 0}};

/// An invoked child (ECMAScript) with its own data, timer and grandchild; parent and child talk.
const char* family_machine = R"xml(
  <datamodel><data id="beats" expr="0"/><data id="acks" expr="0"/></datamodel>
  <state id="s">
    <invoke id="kid"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript">
      <datamodel><data id="k" expr="0"/></datamodel>
      <state id="c1">
        <invoke id="grandkid"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript">
          <datamodel><data id="g" expr="10"/></datamodel>
          <state id="g1"><onentry><send event="g.tick" delay="400ms"/></onentry>
            <transition event="g.tick" target="g1"><assign location="g" expr="g + 1"/><send target="#_parent" event="g.beat"/></transition></state>
          </scxml></content></invoke>
        <onentry><send event="beat" delay="1s"/></onentry>
        <transition event="beat" target="c1"><assign location="k" expr="k + 1"/><send target="#_parent" event="beat.parent"><param name="k" expr="k"/></send></transition>
        <transition event="g.beat"><assign location="k" expr="k + 100"/></transition>
        <transition event="ack"><assign location="k" expr="k + 1000"/></transition>
        <transition event="stop" target="cf"/></state>
      <final id="cf"><donedata><param name="k" expr="k"/></donedata></final></scxml></content></invoke>
    <transition event="beat.parent" cond="beats &lt; 2"><assign location="beats" expr="_event.data.k"/><send target="#_kid" event="ack"/></transition>
    <transition event="beat.parent" target="s2"/>
    <transition event="ping"><send target="#_kid" event="stop"/></transition>
    <transition event="done.invoke.kid" target="s3"><assign location="acks" expr="_event.data.k"/></transition>
  </state>
  <state id="s2"><transition event="again" target="s"/></state>
  <final id="s3"/>)xml";

const std::vector<step> family_script = {
    {{}, 700}, {{}, 700}, {{}, 1000}, {{}, 300}, {{}, 1000}, {{"again"}, 500}, {{"ping"}, 0}, {{}, 100}};

}  // namespace

TEST_CASE("snapshot_replay: null datamodel with parallel regions, history and timers") {
  replay_everywhere(chart(null_machine), null_script);
}

#if XSN_WITH_ECMASCRIPT
TEST_CASE("snapshot_replay: ECMAScript datamodel with data, history, parallel, timers and queued events") {
  replay_everywhere(chart(ecma_machine, " datamodel=\"ecmascript\""), ecma_script);
}

TEST_CASE("snapshot_replay: invoked children and a grandchild, restored recursively") {
  replay_everywhere(chart(family_machine, " datamodel=\"ecmascript\""), family_script);
}

TEST_CASE("snapshot_replay: late binding keeps which states initialised their data") {
  replay_everywhere(chart(R"(
    <state id="a"><datamodel><data id="x" expr="1"/></datamodel>
      <transition event="next" target="b"><assign location="x" expr="x + 1"/></transition></state>
    <state id="b"><datamodel><data id="y" expr="x * 10"/></datamodel>
      <onentry><send event="back" delay="200ms"/></onentry>
      <transition event="back" target="a"/><transition event="bump"><assign location="y" expr="y + 1"/></transition></state>)",
                          " datamodel=\"ecmascript\" binding=\"late\""),
                    {{{"next"}, 100}, {{"bump"}, 150}, {{"next"}, 0}, {{"bump"}, 300}, {{"next"}, 50}});
}
#endif

TEST_CASE("snapshot_replay: an XState machine with context, after, parallel regions and history") {
  auto parsed = xsn::parse_xstate(R"({"id": "m", "initial": "idle", "context": {"n": 0, "log": []},
    "states": {
      "idle": {"on": {"GO": {"target": "work", "actions": {"type": "inc", "params": {"by": 1}}}}},
      "work": {"type": "parallel", "on": {"PAUSE": "paused"}, "states": {
        "hist": {"type": "history", "history": "deep"},
        "a": {"initial": "a1", "states": {"a1": {"after": {"300": "a2"}}, "a2": {"entry": {"type": "inc", "params": {"by": 10}}}}},
        "b": {"initial": "b1", "states": {
          "b1": {"on": {"FLIP": "b2"}},
          "b2": {"on": {"FLIP": {"target": "b1", "actions": {"type": "inc", "params": {"by": 100}}}}}}}}},
      "paused": {"on": {"RESUME": "work.hist", "QUIT": "end"}},
      "end": {"type": "final"}}})",
                                  "replay.json");
  INFO((parsed.errors.empty() ? std::string() : parsed.errors.front().to_string()));
  REQUIRE(parsed);
  xsn::implementations impl;
  impl.action("inc", [](xsn::value& ctx, const xsn::event& ev, const xsn::value& params) {
    auto& o = ctx.as_object();
    o["n"] = o["n"].to_number<std::int64_t>() + params.at("by").to_number<std::int64_t>();
    o["log"].as_array().emplace_back(ev.name);
  });
  auto bound = xsn::bind(*parsed.chart, impl);
  REQUIRE(bound);
  replay_everywhere(parsed.chart,
                    {{{"GO"}, 100}, {{"FLIP"}, 100}, {{"PAUSE"}, 500}, {{"RESUME"}, 100}, {{"FLIP"}, 250},
                     {{"FLIP", "PAUSE"}, 0, true}, {{"RESUME"}, 0}, {{"PAUSE", "QUIT"}, 0}},
                    xsn::xstate_datamodel(*bound));
}

TEST_CASE("snapshot_replay: the persisted snapshot has XState's shape") {
  runner r(chart(null_machine), {});
  r.s->start();
  r.apply({{"go"}, 100});
  r.apply({{"pause"}, 0});
  auto snap = r.s->snapshot();
  const auto& o = snap.as_object();
  CHECK(o.at("status") == "active");
  CHECK(o.at("value") == "paused");
  CHECK(o.at("context").is_object());
  CHECK(boost::json::serialize(o.at("historyValue")) == R"({"deep":[{"id":"l1"},{"id":"r1"}],"shallow":[{"id":"l1"}]})");
  CHECK(o.at("children").is_object());
  // In a parallel state the value maps every region to its own value.
  r.apply({{"resume"}, 0});
  CHECK(boost::json::serialize(r.s->snapshot().at("value")) == R"({"main":{"work":{"left":"l1","right":"r1"}}})");
}

TEST_CASE("snapshot_replay: snapshots of the earlier format (plain history ids) still restore") {
  runner r(chart(null_machine), {});
  REQUIRE_FALSE(r.s->restore_json(R"({"status":"active","configuration":["paused"],
      "historyValue":{"deep":["l2","r2"]},"context":null,"children":{}})"));
  REQUIRE_FALSE(r.s->process(xsn::event("resume")));
  CHECK(r.s->active_atomic_states() == std::vector<std::string>{"l2", "r2"});
}

#if XSN_WITH_ECMASCRIPT
namespace {

/// A snapshot with everything in it: children, timers, history, a queue.
std::string rich_snapshot() {
  runner r(chart(family_machine, " datamodel=\"ecmascript\""), {});
  r.s->start();
  r.apply({{}, 700});
  r.apply({{"ping", "ping"}, 0, true});
  return boost::json::serialize(r.s->snapshot());
}

/// Restores `text` into a fresh session: a failure must be `bad_snapshot` and leave the session
/// as new (it still starts). Returns the error.
std::error_code try_restore(const std::shared_ptr<const xsn::statechart>& c, std::string_view text,
                            std::string* why = nullptr) {
  runner r(c, {});
  auto ec = r.s->restore_json(text);
  if (ec && why && !r.errors.empty()) *why = r.errors.back();
  if (ec) {
    CHECK(ec == xsn::errc::bad_snapshot);
    // It says why.
    REQUIRE_FALSE(r.errors.empty());
    CHECK(r.errors.back().rfind("snapshot refused: ", 0) == 0);
    CHECK(r.s->configuration().empty());
    CHECK(r.s->snapshot().at("children").as_object().empty());
    r.s->start();
    CHECK(r.s->active_atomic_states() == std::vector<std::string>{"s"});
    CHECK(r.s->running());
  } else {
    r.settle();  // whatever was restored runs without crashing
  }
  return ec;
}

}  // namespace

TEST_CASE("snapshot_replay: malformed snapshots are refused with bad_snapshot, never a crash") {
  auto c = chart(family_machine, " datamodel=\"ecmascript\"");
  const auto text = rich_snapshot();
  std::string why;
  const auto restored = try_restore(c, text, &why);
  INFO("refused: " << why);
  REQUIRE_FALSE(restored);

  SECTION("truncated JSON") {
    for (std::size_t n = 0; n < text.size(); n += 13) CHECK(try_restore(c, text.substr(0, n)) == xsn::errc::bad_snapshot);
    CHECK(try_restore(c, "") == xsn::errc::bad_snapshot);
    CHECK(try_restore(c, "{\"status\": \"active\"} trailing") == xsn::errc::bad_snapshot);
  }
  SECTION("wrong types, unknown states, bad timers") {
    const auto original = boost::json::parse(text);
    struct mutation {
      const char* pointer;  // JSON pointer of the member to replace
      const char* value;    // JSON text
    };
    const mutation bad[] = {
        {"/status", "5"},
        {"/status", "\"sleeping\""},
        {"/configuration", "\"s\""},
        {"/configuration", "[1]"},
        {"/configuration", "[\"nope\"]"},
        {"/configuration", "[\"s\", \"s2\"]"},
        {"/historyValue", "[]"},
        {"/children/kid/snapshot/pending", "{}"},
        {"/children/kid/snapshot/pending/0/remaining_ns", "-1"},
        {"/children/kid/snapshot/pending/0/remaining_ns", "\"soon\""},
        {"/children/kid/snapshot/pending/0/remaining_ns", "9223372036854775807"},
        {"/children/kid/snapshot/pending/0/due_ns", "-9223372036854775807"},
        {"/children/kid/snapshot/pending/0/event", "{\"name\": 7}"},
        {"/queue", "7"},
        {"/queue/0", "{\"type\": \"external\"}"},
        {"/queue/0/type", "\"sideways\""},
        {"/children", "[]"},
        {"/children/kid", "7"},
        {"/children/kid/invoke", "\"kid\""},
        {"/children/kid/invoke", "99"},
        {"/children/kid/snapshot", "7"},
        {"/children/kid/snapshot/configuration", "[\"s\"]"},
        {"/children/kid/snapshot/children/grandkid/snapshot/configuration", "[\"nope\"]"},
        {"/children/kid/snapshot/children/grandkid/snapshot/pending/0/remaining_ns", "-5"},
        {"/children/kid/snapshot/status", "[]"},
    };
    for (const auto& m : bad) {
      INFO(m.pointer << " = " << m.value);
      auto v = original;
      boost::json::error_code ec;
      auto* slot = v.find_pointer(m.pointer, ec);
      REQUIRE(slot != nullptr);
      *slot = boost::json::parse(m.value);
      CHECK(try_restore(c, boost::json::serialize(v)) == xsn::errc::bad_snapshot);
    }
    CHECK(try_restore(c, "42") == xsn::errc::bad_snapshot);
    runner r(c, {});
    auto v = original;
    v.as_object()["configuration"] = boost::json::parse(R"(["s", "nope"])");
    CHECK(r.s->restore(v) == xsn::errc::bad_snapshot);
    CHECK(r.errors == std::vector<std::string>{"snapshot refused: `configuration`: 'nope' is no state of this chart, or a history state"});
    CHECK(try_restore(c, "[]") == xsn::errc::bad_snapshot);
  }
  SECTION("random mutations: refused or restored, never a crash") {
    std::mt19937 rng(20261127);
    const boost::json::value replacements[] = {nullptr, 0, -1, 1.5, "x", "s", boost::json::array{}, boost::json::object{},
                                               boost::json::array{"s"}, true, std::int64_t(1) << 62};
    for (int i = 0; i < 120; ++i) {
      auto v = boost::json::parse(text);
      // Walk down a random path and replace what is there.
      boost::json::value* node = &v;
      for (int depth = 0; depth < 6; ++depth) {
        if (auto* o = node->if_object(); o && !o->empty() && rng() % 4 != 0) {
          auto it = o->begin() + static_cast<std::ptrdiff_t>(rng() % o->size());
          node = &it->value();
        } else if (auto* a = node->if_array(); a && !a->empty() && rng() % 4 != 0) {
          node = &(*a)[rng() % a->size()];
        } else {
          break;
        }
      }
      *node = replacements[rng() % std::size(replacements)];
      (void)try_restore(c, boost::json::serialize(v));
    }
  }
}
#endif
