#include <xsn/parse/xstate.hpp>

#include "catch.hpp"
#include "session_driver.hpp"

#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using boost::json::parse;

/// An XState machine on a private io_context and manual clock, with recording implementations.
struct machine : xsn_test::session_driver {
  std::vector<std::string> log;  // every action call, "name" or "name:param"

  explicit machine(const std::string& json, xsn::implementations extra = {}) : session_driver(xsn_test::xstate_chart(json)) {
    xsn::implementations impl;
    for (const auto* name : {"a", "b", "c", "enter", "leave", "act", "inc"})
      impl.action(name, [this, name](xsn::value& ctx, const xsn::event& ev, const xsn::value& params) {
        std::string entry = name;
        if (const auto* o = params.if_object(); o && o->contains("tag")) {
          const auto& tag = o->at("tag").as_string();
          entry.append(":").append(tag.data(), tag.size());
        }
        log.push_back(entry);
        if (std::string_view(name) == "inc") ctx.as_object()["n"] = ctx.as_object()["n"].to_number<std::int64_t>() + 1;
        (void)ev;
      });
    impl.action("record_event", [this](xsn::value&, const xsn::event& ev, const xsn::value&) {
      log.push_back(ev.name + " " + boost::json::serialize(ev.data));
    });
    impl.action("raise", xsn::action_fn([](xsn::value&, const xsn::event&, const xsn::value& p, xsn::action_scope& self) {
      self.raise(xsn::event(std::string(p.at("type").as_string())));
    }));
    impl.action("boom", [](xsn::value&, const xsn::event&, const xsn::value&) { throw std::runtime_error("boom"); });
    impl.guard("yes", [](const xsn::value&, const xsn::event&, const xsn::value&) { return true; });
    impl.guard("no", [](const xsn::value&, const xsn::event&, const xsn::value&) { return false; });
    impl.guard("small", [](const xsn::value& ctx, const xsn::event&, const xsn::value& p) {
      return ctx.at("n").to_number<std::int64_t>() < p.at("below").to_number<std::int64_t>();
    });
    impl.guard("explodes", [](const xsn::value&, const xsn::event&, const xsn::value&) -> bool { throw std::runtime_error("bad guard"); });
    impl.delay("later", [](const xsn::value& ctx, const xsn::event&) {
      return std::chrono::milliseconds(ctx.at("wait").to_number<std::int64_t>());
    });
    impl.provide(extra);
    open(xsn::xstate_datamodel(xsn_test::bound(*chart, impl)));
  }
  machine& send(const std::string& name, xsn::value data = nullptr) {
    session_driver::send(name, std::move(data));
    return *this;
  }
  machine& advance(int ms) {
    session_driver::advance(ms);
    return *this;
  }
  std::string value() const {
    return boost::json::serialize(xsn::state_value_of(*chart, [this](xsn::state_index x) { return s->is_active(x); }));
  }
  xsn::value& context() { return *xsn::xstate_context(s->datamodel()); }
  std::string take_log() {
    std::string out;
    for (const auto& l : log) out += (out.empty() ? "" : " ") + l;
    log.clear();
    return out;
  }
};

}  // namespace

TEST_CASE("xstate_semantics: reenter false keeps the source, reenter true exits and re-enters it") {
  machine m(R"({"initial": "p", "states": {"p": {"initial": "x", "entry": "enter", "exit": "leave",
    "on": {"SELF": "p", "RE": {"target": "p", "reenter": true}, "KID": ".y", "KIDRE": {"target": ".y", "reenter": true}, "NONE": {"actions": "act"}},
    "states": {"x": {"on": {"N": "y"}}, "y": {}}}}})");
  CHECK(m.value() == R"({"p":"x"})");
  CHECK(m.take_log() == "enter");
  m.send("N");
  m.send("SELF");  // not exited, children reset to the initial state
  CHECK(m.value() == R"({"p":"x"})");
  CHECK(m.take_log().empty());
  m.send("KID");
  CHECK(m.value() == R"({"p":"y"})");
  CHECK(m.take_log().empty());
  m.send("RE");
  CHECK(m.value() == R"({"p":"x"})");
  CHECK(m.take_log() == "leave enter");
  m.send("KIDRE");
  CHECK(m.value() == R"({"p":"y"})");
  CHECK(m.take_log() == "leave enter");
  m.send("NONE");
  CHECK(m.take_log() == "act");
}

TEST_CASE("xstate_semantics: a root transition with reenter re-enters the root") {
  machine m(R"({"initial": "a", "entry": "enter", "exit": "leave", "on": {"R": {"target": ".b", "reenter": true}, "S": ".b"},
    "states": {"a": {}, "b": {}}})");
  CHECK(m.take_log() == "enter");
  m.send("S");
  CHECK(m.value() == R"("b")");
  CHECK(m.take_log().empty());
  m.send("R");
  CHECK(m.take_log() == "leave enter");
}

TEST_CASE("xstate_semantics: always transitions run after every microstep until none is enabled") {
  machine m(R"({"initial": "a", "context": {"n": 0}, "states": {
    "a": {"on": {"GO": "count"}},
    "count": {"always": [{"target": "count", "reenter": true, "guard": {"type": "small", "params": {"below": 3}}, "actions": "inc"}, {"target": "done"}]},
    "done": {}}})");
  m.send("GO");
  CHECK(m.value() == R"("done")");
  CHECK(m.context().at("n").as_int64() == 3);
  CHECK(m.take_log() == "inc inc inc");
}

TEST_CASE("xstate_semantics: after schedules xstate.after events on entry and cancels them on exit") {
  machine m(R"({"id": "m", "initial": "a", "context": {"wait": 250}, "states": {
    "a": {"after": {"100": "b"}, "on": {"LEAVE": "c"}},
    "b": {"after": {"later": "c"}, "on": {"*": {"actions": "record_event"}}},
    "c": {"on": {"BACK": "a"}}}})");
  m.advance(99);
  CHECK(m.value() == R"("a")");
  m.advance(1);
  CHECK(m.value() == R"("b")");
  m.advance(249);
  CHECK(m.value() == R"("b")");
  m.advance(1);
  CHECK(m.value() == R"("c")");
  m.send("BACK");
  m.advance(50);
  m.send("LEAVE");  // exits a: its timer is cancelled
  CHECK(m.clk.pending() == 0);
  m.advance(1000);
  CHECK(m.value() == R"("c")");
}

TEST_CASE("xstate_semantics: the after event is named xstate.after.<delay>.<stateId>") {
  machine m(R"({"id": "m", "initial": "a", "states": {"a": {"after": {"10": {"actions": "record_event"}}}}})");
  m.advance(10);
  CHECK(m.take_log() == "xstate.after.10.m.a null");
}

TEST_CASE("xstate_semantics: done events carry the final state's output; a top-level final ends the machine") {
  machine m(R"({"id": "m", "initial": "job", "states": {
    "job": {"initial": "run", "onDone": {"target": "end", "actions": "record_event"},
            "states": {"run": {"on": {"FINISH": "ok"}}, "ok": {"type": "final", "output": {"code": 7}}}},
    "end": {"type": "final"}}})");
  m.send("FINISH");
  CHECK(m.take_log() == R"(xstate.done.state.m.job {"code":7})");
  CHECK(m.value() == R"("end")");
  CHECK(m.status() == "done");
  CHECK(m.s->send(xsn::event("FINISH")) == xsn::errc::not_running);
}

TEST_CASE("xstate_semantics: a parallel state is done when every region is final") {
  machine m(R"({"id": "m", "initial": "p", "states": {
    "p": {"type": "parallel", "onDone": "after",
          "states": {"r1": {"initial": "a", "states": {"a": {"on": {"F1": "f"}}, "f": {"type": "final"}}},
                     "r2": {"initial": "a", "states": {"a": {"on": {"F2": "f"}}, "f": {"type": "final"}}}}},
    "after": {}}})");
  CHECK(m.value() == R"({"p":{"r1":"a","r2":"a"}})");
  m.send("F1");
  CHECK(m.value() == R"({"p":{"r1":"f","r2":"a"}})");
  m.send("F2");
  CHECK(m.value() == R"("after")");
  CHECK(m.status() == "active");
}

TEST_CASE("xstate_semantics: a plain descriptor matches its name only; exact before wildcards, longest wildcard first") {
  machine m(R"({"initial": "a", "states": {"a": {"on": {
    "*": {"actions": {"type": "act", "params": {"tag": "any"}}},
    "x.*": {"actions": {"type": "act", "params": {"tag": "x*"}}},
    "x.y.*": {"actions": {"type": "act", "params": {"tag": "xy*"}}},
    "x": {"actions": {"type": "act", "params": {"tag": "x"}}}}}}})");
  m.send("x");
  CHECK(m.take_log() == "act:x");
  m.send("x.y");
  CHECK(m.take_log() == "act:xy*");
  m.send("x.z");
  CHECK(m.take_log() == "act:x*");
  m.send("xz");
  CHECK(m.take_log() == "act:any");
}

TEST_CASE("xstate_semantics: shallow and deep history, with and without a default target") {
  machine m(R"({"initial": "p", "states": {
    "p": {"initial": "a", "on": {"OUT": "q"}, "states": {
      "a": {"on": {"N": "b"}},
      "b": {"initial": "b1", "states": {"b1": {"on": {"N": "b2"}}, "b2": {}}},
      "deep": {"type": "history", "history": "deep"},
      "shallow": {"type": "history"},
      "dflt": {"type": "history", "target": "b.b2"}}},
    "q": {"on": {"DEEP": "p.deep", "SHALLOW": "p.shallow", "DFLT": "p.dflt"}}}})");
  m.send("DEEP");  // nothing stored yet: the parent's initial state
  CHECK(m.value() == R"({"p":"a"})");
  m.send("OUT").send("DFLT");
  CHECK(m.value() == R"({"p":"a"})");  // stored now: a
  m.send("N").send("N").send("OUT");
  m.send("DEEP");
  CHECK(m.value() == R"({"p":{"b":"b2"}})");
  m.send("OUT").send("SHALLOW");
  CHECK(m.value() == R"({"p":{"b":"b1"}})");
}

TEST_CASE("xstate_semantics: history default target is used before anything is stored") {
  machine m(R"({"initial": "q", "states": {
    "p": {"initial": "a", "states": {"a": {}, "b": {"initial": "b1", "states": {"b1": {}, "b2": {}}}, "h": {"type": "history", "target": "b.b2"}}},
    "q": {"on": {"H": "p.h"}}}})");
  m.send("H");
  CHECK(m.value() == R"({"p":{"b":"b2"}})");
}

TEST_CASE("xstate_semantics: parallel regions take their own transitions; the parallel's only when no region has one") {
  machine m(R"({"initial": "p", "states": {"p": {"type": "parallel", "on": {"T": {"actions": {"type": "act", "params": {"tag": "p"}}}, "U": {"actions": {"type": "act", "params": {"tag": "p"}}}},
    "states": {"r1": {"initial": "a", "states": {"a": {"on": {"T": "b"}}, "b": {}}},
               "r2": {"initial": "a", "states": {"a": {"on": {"T": "b"}}, "b": {}}}}}}})");
  m.send("T");
  CHECK(m.value() == R"({"p":{"r1":"b","r2":"b"}})");
  CHECK(m.take_log().empty());
  m.send("U");
  CHECK(m.take_log() == "act:p");
}

TEST_CASE("xstate_semantics: stateIn and the and/or/not combinators") {
  machine m(R"({"id": "m", "type": "parallel", "states": {
    "mode": {"initial": "off", "states": {"off": {"on": {"ON": "on"}}, "on": {}}},
    "door": {"initial": "closed", "states": {"closed": {"on": {
      "OPEN": [{"target": "open", "guard": {"type": "and", "guards": [{"type": "stateIn", "state": "#m.mode.on"}, {"type": "not", "guard": "no"}]}},
               {"actions": "act", "guard": {"type": "or", "guards": ["no", {"type": "stateIn", "state": {"mode": "off"}}]}}]}},
      "open": {}}}}})");
  m.send("OPEN");
  CHECK(m.value() == R"({"mode":"off","door":"closed"})");
  CHECK(m.take_log() == "act");
  m.send("ON").send("OPEN");
  CHECK(m.value() == R"({"mode":"on","door":"open"})");
}

TEST_CASE("xstate_semantics: actions see the event and params, change the context, raise events") {
  machine m(R"({"initial": "a", "context": {"n": 0}, "states": {
    "a": {"on": {"GO": {"target": "b", "actions": ["inc", "record_event", {"type": "raise", "params": {"type": "NEXT"}}]}}},
    "b": {"on": {"NEXT": {"target": "c", "actions": "inc"}}},
    "c": {}}})");
  m.send("GO", parse(R"({"k": 1})"));
  CHECK(m.value() == R"("c")");
  CHECK(m.context().at("n").as_int64() == 2);
  CHECK(m.take_log() == R"(inc GO {"k":1} inc)");
}

TEST_CASE("xstate_semantics: an action or guard that throws ends the machine with status error") {
  machine m(R"({"initial": "a", "states": {"a": {"on": {"BAD": {"target": "b", "actions": "boom"}, "G": {"target": "b", "guard": "explodes"}}}, "b": {}}})");
  m.send("BAD");
  CHECK(m.status() == "error");
  CHECK_FALSE(m.s->running());
  machine g(R"({"initial": "a", "states": {"a": {"on": {"G": {"target": "b", "guard": "explodes"}}}, "b": {}}})");
  g.send("G");
  CHECK(g.status() == "error");
  CHECK(g.value() == R"("a")");
}

TEST_CASE("xstate_semantics: bindings are resolved once, at bind time") {
  auto r = xsn::parse_xstate(R"({"initial": "a", "states": {"a": {"on": {"T": {"target": "b", "guard": "ok", "actions": "count"}}, "after": {"soon": "b"}}, "b": {"on": {"T": "a"}}}})", "b.json");
  REQUIRE(r);
  int calls = 0;
  std::shared_ptr<const xsn::bound_implementations> bound;
  {
    xsn::implementations impl;
    impl.guard("ok", [](const xsn::value&, const xsn::event&, const xsn::value&) { return true; });
    auto missing = xsn::bind(*r.chart, impl);
    REQUIRE_FALSE(missing);
    // Every missing name at once, not the first.
    CHECK(missing.error().message ==
          "2 implementations are missing or do not fit: action 'count' is not provided; delay 'soon' is not provided");
    impl.action("count", [&calls](xsn::value&, const xsn::event&, const xsn::value&) { ++calls; });
    CHECK(xsn::bind(*r.chart, impl).error().message == "delay 'soon' is not provided");
    impl.delay("soon", std::chrono::milliseconds(5));
    auto ok = xsn::bind(*r.chart, impl);
    REQUIRE(ok);
    bound = *ok;
    CHECK(bound->actions.size() == 1);
    CHECK(bound->guards.size() == 1);
    CHECK(bound->delays.size() == 1);
  }  // the implementations (and their name maps) are gone: sessions use the resolved slots only
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session_options o;
  o.make_datamodel = xsn::xstate_datamodel(bound);
  xsn::session s(r.chart, ioc.get_executor(), clk, std::move(o));
  s.start();
  for (int i = 0; i < 10; ++i) REQUIRE_FALSE(s.process(xsn::event("T")));
  CHECK(calls == 5);
  // Not an XState chart, or another chart: refused.
  auto other = xsn::parse_xstate(R"({"initial": "a", "states": {"a": {}}})", "o.json");
  REQUIRE(other);
  auto scxml = xsn::parse_scxml(R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><state id="a"/></scxml>)", "s.scxml");
  REQUIRE(scxml);
  CHECK_FALSE(xsn::bind(*scxml.chart, {}));
  xsn::session_options wrong;
  wrong.make_datamodel = xsn::xstate_datamodel(bound);
  xsn::session s2(other.chart, ioc.get_executor(), clk, std::move(wrong));
  s2.start();
  CHECK(s2.snapshot().as_object().at("status") == "error");
}

TEST_CASE("xstate_semantics: without bindings a machine naming no implementations runs; one naming some fails") {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  auto plain = xsn::parse_xstate(R"({"initial": "a", "states": {"a": {"on": {"T": "b"}}, "b": {}}})", "p.json");
  REQUIRE(plain);
  xsn::session s(plain.chart, ioc.get_executor(), clk);
  s.start();
  REQUIRE_FALSE(s.process(xsn::event("T")));
  CHECK(s.snapshot().as_object().at("value") == parse(R"("b")"));
  auto named = xsn::parse_xstate(R"({"initial": "a", "states": {"a": {"entry": "x"}}})", "n.json");
  REQUIRE(named);
  xsn::session n(named.chart, ioc.get_executor(), clk);
  n.start();
  CHECK(n.snapshot().as_object().at("status") == "error");
}

TEST_CASE("xstate_semantics: xstate.init is the event of the initial entry actions") {
  machine m(R"({"initial": "a", "entry": "record_event", "states": {"a": {}}})");
  CHECK(m.take_log() == "xstate.init null");
}

TEST_CASE("xstate_semantics: initial transition actions run when a state is entered by default") {
  machine m(R"({"id": "m", "initial": {"target": "p", "actions": "a"}, "entry": "enter", "states": {
    "p": {"entry": "b", "initial": {"target": "x", "actions": [{"type": "c"}]}, "on": {"OUT": "q", "HIST": "q.h"},
          "states": {"x": {}, "y": {}}},
    "q": {"initial": {"target": "q1", "actions": "act"}, "on": {"BACK": "p", "DEEP": "#m.p.y"},
          "states": {"q1": {}, "h": {"type": "history"}}}}})");
  CHECK(m.take_log() == "enter a b c");  // entry, then the state's initial actions, outside in
  // (The expected logs are what XState 5.33.3 logs for the same machine and events.)
  m.send("HIST");  // nothing stored yet: the history's default is q's own initial transition
  CHECK(m.value() == R"({"q":"q1"})");
  CHECK(m.take_log() == "act");
  m.send("BACK");
  CHECK(m.take_log() == "b c");
  m.send("OUT");
  CHECK(m.take_log() == "act");
  m.send("DEEP");  // p's child is targeted: p's initial actions do not run
  CHECK(m.value() == R"({"p":"y"})");
  CHECK(m.take_log() == "b");
  m.send("HIST");  // restored from history: q is not entered by default
  CHECK(m.value() == R"({"q":"q1"})");
  CHECK(m.take_log().empty());
}

TEST_CASE("xstate_semantics: tags, meta and description of the active states") {
  machine m(R"({"id": "m", "initial": "a", "tags": "root", "states": {
    "a": {"tags": ["x", "y"], "meta": {"color": "red"}, "description": "first", "on": {"GO": "b"}},
    "b": {"tags": "y", "meta": 7}}})");
  CHECK(m.s->tags() == std::vector<std::string>{"root", "x", "y"});
  CHECK(m.s->has_tag("x"));
  CHECK_FALSE(m.s->has_tag("z"));
  CHECK(boost::json::serialize(m.s->meta()) == R"({"m.a":{"color":"red"}})");
  CHECK(m.chart->states[m.chart->find_state("m.a")].description == "first");
  CHECK(m.chart->states[m.chart->find_state("m.b")].description.empty());
  m.send("GO");
  CHECK(m.s->tags() == std::vector<std::string>{"root", "y"});
  CHECK_FALSE(m.s->has_tag("x"));
  CHECK(boost::json::serialize(m.s->meta()) == R"({"m.b":7})");
}

TEST_CASE("xstate_semantics: the machine's output once it reaches a top-level final state") {
  machine m(R"({"id": "m", "initial": "a", "output": {"ok": true},
    "states": {"a": {"on": {"END": "z"}}, "z": {"type": "final", "output": "ignored"}}})");
  CHECK(m.s->output().is_null());
  CHECK_FALSE(m.s->snapshot().as_object().contains("output"));
  m.send("END");
  CHECK(m.status() == "done");
  CHECK(boost::json::serialize(m.s->output()) == R"({"ok":true})");
  CHECK(boost::json::serialize(m.s->snapshot().at("output")) == R"({"ok":true})");

  machine none(R"({"id": "n", "initial": "a", "states": {"a": {"on": {"END": "z"}}, "z": {"type": "final"}}})");
  none.send("END");
  CHECK(none.status() == "done");
  CHECK(none.s->output().is_null());

  machine stopped(R"({"id": "s", "initial": "a", "output": 1, "states": {"a": {}}})");
  stopped.s->stop();
  CHECK(stopped.s->output().is_null());
}

TEST_CASE("xstate_semantics: stop runs no exit actions and keeps the value; a top-level final runs all of them") {
  machine m(R"({"id": "m", "initial": "a", "exit": "leave", "states": {
    "a": {"exit": "b", "on": {"END": "z"}}, "z": {"type": "final", "exit": "c"}}})");
  m.s->stop();  // XState 5.33 actor.stop(): status `stopped`, no exit actions, the snapshot stays
  CHECK(m.take_log().empty());
  CHECK(m.status() == "stopped");
  CHECK(m.value() == R"("a")");
  CHECK(m.s->is_active(m.chart->find_state("m.a")));

  machine f(R"({"id": "m", "initial": "a", "exit": "leave", "states": {
    "a": {"exit": "b", "on": {"END": "z"}}, "z": {"type": "final", "exit": "c"}}})");
  f.send("END");
  CHECK(f.take_log() == "b c leave");
  CHECK(f.value() == R"("z")");
}

TEST_CASE("xstate_semantics: always selection keeps the entry order after a microstep that changes nothing") {
  // XState keeps the previous snapshot (and its `_nodes` order) when a microstep leaves the node set
  // and history unchanged: s19's `.s20` stays ahead of s26's `always` after the unhandled `D`.
  machine m(R"({"id":"g","initial":"s1","states":{"s1":{"initial":"s2","on":{"*":{"target":".s6.s11.s12"}},"states":{"s2":{},
    "s6":{"initial":"s7","states":{"s7":{"initial":"s8","states":{"s8":{}}},"s11":{"type":"parallel",
      "entry":[{"type":"raise","params":{"type":"x"}}],"states":{"s12":{},"s13":{"exit":[{"type":"raise","params":{"type":"D"}}]},
      "s14":{"on":{"x.*":[{"target":"#g.s17.s18.s19.s20"}]}}}}}}}},
    "s17":{"type":"parallel","states":{"s18":{"initial":"s24","states":{"s19":{"initial":"s20","always":[{"target":".s20"}],
      "states":{"s20":{}}},"s24":{}}},"s26":{"always":[{"target":"s18"}]}}}}})");
  m.send("x.y");
  CHECK(m.value() == R"({"s17":{"s18":{"s19":"s20"},"s26":{}}})");
}

TEST_CASE("xstate_semantics: a history default that re-enters an active state does not loop") {
  machine m(R"({"id":"g","initial":"s1","states":{"s1":{"initial":"s2","on":{"x.z":[{"target":"#g.s1.s12.s16.s18"}]},"states":{"s2":{},
    "s3":{"type":"parallel","states":{"s4":{"initial":"s5","states":{"s5":{"always":{"target":"s6"}},"s6":{"type":"history"}}},"s10":{"id":"i10"}}},
    "s12":{"type":"parallel","states":{"s16":{"initial":"s17","states":{"s17":{},"s18":{"on":{"x.*":{"target":["#i10"]}}}}}}}}}}})");
  m.send("x.z").send("x.y");
  CHECK(m.status() == "active");
  CHECK(m.value() == R"({"s1":{"s3":{"s4":"s5","s10":{}}}})");
}
