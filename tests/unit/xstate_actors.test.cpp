#include <xsn/runtime/actors.hpp>

#include "catch.hpp"
#include "session_driver.hpp"

#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

std::shared_ptr<const xsn::statechart> chart_of(const std::string& json) { return xsn_test::xstate_chart(json); }

/// The first error parsing `json`, or "" when it parses.
std::string parse_error(const std::string& json) {
  auto r = xsn::parse_xstate(json, "bad.json");
  return r.errors.empty() ? std::string() : r.errors.front().to_string();
}

/// Records action calls into `log` as "tag" (params `{"tag": ...}`) or "tag <event> <data>".
xsn::implementations recorders(std::vector<std::string>& log, const std::string& prefix) {
  xsn::implementations impl;
  impl.action("log", [&log, prefix](xsn::value&, const xsn::event& ev, const xsn::value& p) {
    std::string entry = prefix + std::string(p.at("tag").as_string());
    if (p.as_object().contains("event")) entry += " " + ev.name + " " + boost::json::serialize(ev.data);
    log.push_back(entry);
  });
  return impl;
}

/// A parent machine with implementations, on a private io_context and manual clock (not started).
struct tree : xsn_test::session_driver {
  std::shared_ptr<const xsn::bound_implementations> bound;

  tree(const std::string& json, const xsn::implementations& impl) : session_driver(chart_of(json)) {
    bound = xsn_test::bound(*chart, impl);
    open(xsn::xstate_datamodel(bound), false);
  }
  xsn::value snap() { return s->snapshot(); }
};

const char* child_json = R"({
  "id": "child", "initial": "run", "output": {"answer": 42},
  "states": {
    "run": {
      "entry": [{"type": "log", "params": {"tag": "child entry"}}],
      "on": {
        "ping": {"actions": [{"type": "sendParent", "event": {"type": "pong", "n": 1}}]},
        "finish": "end",
        "fail": {"actions": ["explode"]}
      }
    },
    "end": {"type": "final"}
  }
})";

xsn::implementations child_impl(std::vector<std::string>& log) {
  auto impl = recorders(log, "");
  impl.action("explode", [](xsn::value&, const xsn::event&, const xsn::value&) { throw std::runtime_error("kaboom"); });
  return impl;
}

const char* parent_json = R"({
  "id": "p", "initial": "idle",
  "states": {
    "idle": {"on": {"go": "busy"}},
    "busy": {
      "entry": [{"type": "log", "params": {"tag": "parent entry"}}],
      "invoke": {
        "src": "child",
        "onDone": {"target": "done", "actions": [{"type": "log", "params": {"tag": "done", "event": true}}]},
        "onError": {"target": "failed", "actions": [{"type": "log", "params": {"tag": "error", "event": true}}]}
      },
      "on": {
        "ping": {"actions": [{"type": "sendTo", "to": "0.p.busy", "event": "ping"}]},
        "finish": {"actions": [{"type": "forwardTo", "to": "0.p.busy"}]},
        "fail": {"actions": [{"type": "forwardTo", "to": "0.p.busy"}]},
        "pong": {"target": "ponged", "actions": [{"type": "log", "params": {"tag": "pong", "event": true}}]},
        "leave": "idle"
      }
    },
    "ponged": {"on": {"leave": "idle"}},
    "done": {},
    "failed": {}
  }
})";

xsn::implementations parent_impl(std::vector<std::string>& log) {
  auto impl = recorders(log, "");
  impl.actor("child", xsn::actor_logic::machine(chart_of(child_json), child_impl(log)));
  return impl;
}

}  // namespace

TEST_CASE("xstate actors: an invoked child machine starts after the state's entry; its output reaches onDone") {
  std::vector<std::string> log;
  tree t(parent_json, parent_impl(log));
  t.start();
  t.send("go");
  CHECK(log == std::vector<std::string>{"parent entry", "child entry"});
  auto snap = t.snap();
  REQUIRE(snap.at("children").as_object().contains("0.p.busy"));  // XState's default id: <index>.<stateId>
  CHECK(snap.at("children").at("0.p.busy").at("src") == "child");
  CHECK(snap.at("children").at("0.p.busy").at("snapshot").at("value") == "run");
  t.send("finish");
  CHECK(t.states() == std::vector<std::string>{"p.done"});
  CHECK(log.back() == R"(done xstate.done.actor.0.p.busy {"output":{"answer":42},"actorId":"0.p.busy"})");
  CHECK(t.snap().at("children").as_object().empty());  // a finished actor leaves `children`
}

TEST_CASE("xstate actors: sendTo and sendParent between a machine and its child") {
  std::vector<std::string> log;
  tree t(parent_json, parent_impl(log));
  t.start();
  t.send("go").send("ping");
  CHECK(t.states() == std::vector<std::string>{"p.ponged"});
  CHECK(log.back() == R"(pong pong {"n":1})");
  CHECK(t.snap().at("children").as_object().empty());  // leaving `busy` stopped the child
}

TEST_CASE("xstate actors: a failing child machine sends xstate.error.actor to onError") {
  std::vector<std::string> log;
  tree t(parent_json, parent_impl(log));
  t.start();
  t.send("go").send("fail");
  CHECK(t.states() == std::vector<std::string>{"p.failed"});
  REQUIRE_FALSE(log.empty());
  CHECK(log.back().rfind("error xstate.error.actor.0.p.busy ", 0) == 0);
  CHECK(log.back().find("kaboom") != std::string::npos);
  CHECK(t.status() == "active");
}

TEST_CASE("xstate actors: exiting the invoking state stops the child; what it sent is dropped") {
  std::vector<std::string> log;
  tree t(parent_json, parent_impl(log));
  t.start();
  t.send("go");
  // `ping` makes the child send `pong`; `leave` is queued before it, so the pong is dropped.
  REQUIRE_FALSE(t.s->send(xsn::event("ping")));
  REQUIRE_FALSE(t.s->send(xsn::event("leave")));
  t.settle();
  CHECK(t.states() == std::vector<std::string>{"p.idle"});
  CHECK(t.snap().at("children").as_object().empty());
}

TEST_CASE("xstate actors: a promise actor's value reaches onDone; a rejection reaches onError") {
  const char* json = R"({
    "id": "m", "initial": "wait",
    "states": {
      "wait": {
        "invoke": {"src": "fetch", "id": "f", "input": {"url": "x"},
          "onDone": {"target": "ok", "actions": [{"type": "log", "params": {"tag": "ok", "event": true}}]},
          "onError": {"target": "ko", "actions": [{"type": "log", "params": {"tag": "ko", "event": true}}]}}
      },
      "ok": {}, "ko": {}
    }
  })";
  std::vector<std::string> log;
  std::optional<xsn::promise_handle> handle;
  xsn::value seen_input;
  auto impl = recorders(log, "");
  impl.actor("fetch", xsn::actor_logic::promise([&](const xsn::value& input, xsn::promise_handle h) {
    seen_input = input;
    handle = h;
  }));
  tree t(json, impl);
  t.start();
  REQUIRE(handle);
  CHECK(seen_input == boost::json::parse(R"({"url":"x"})"));
  CHECK(t.states() == std::vector<std::string>{"m.wait"});
  SECTION("resolve") {
    handle->resolve(7);
    handle->reject("ignored: settled once");
    t.settle();
    CHECK(t.states() == std::vector<std::string>{"m.ok"});
    CHECK(log == std::vector<std::string>{R"(ok xstate.done.actor.f {"output":7,"actorId":"f"})"});
  }
  SECTION("reject") {
    handle->reject("nope");
    t.settle();
    CHECK(t.states() == std::vector<std::string>{"m.ko"});
    CHECK(log == std::vector<std::string>{R"(ko xstate.error.actor.f {"error":"nope","actorId":"f"})"});
  }
  SECTION("a promise function that throws rejects") {
    xsn::implementations thrower = recorders(log, "");
    thrower.actor("fetch", xsn::actor_logic::promise([](const xsn::value&, xsn::promise_handle) { throw std::runtime_error("no network"); }));
    tree t2(json, thrower);
    t2.start();
    CHECK(t2.states() == std::vector<std::string>{"m.ko"});
    CHECK(log.back().find("no network") != std::string::npos);
  }
}

TEST_CASE("xstate actors: a finished actor's done event still queued when its state is left is dropped") {
  // XState processes a done event as soon as the actor finishes; here it can wait in the queue
  // behind an event that re-enters the invoking state, whose new actor has the same id.
  const char* json = R"({
    "id": "m", "initial": "wait",
    "states": {
      "wait": {"invoke": {"src": "fetch", "id": "f", "onDone": {"target": "ok", "actions": {"type": "log", "params": {"tag": "ok", "event": true}}},
                          "onError": {"target": "ko", "actions": {"type": "log", "params": {"tag": "ko", "event": true}}}},
               "on": {"RE": {"target": "wait", "reenter": true}, "LEAVE": "idle"}},
      "idle": {"on": {"*": {"actions": {"type": "log", "params": {"tag": "idle", "event": true}}}}},
      "ok": {}, "ko": {}
    }
  })";
  std::vector<std::string> log;
  std::vector<xsn::promise_handle> handles;
  auto impl = recorders(log, "");
  impl.actor("fetch", xsn::actor_logic::promise([&](const xsn::value&, xsn::promise_handle h) { handles.push_back(h); }));
  tree t(json, impl);
  t.start();
  REQUIRE(handles.size() == 1);
  SECTION("re-entered: the new actor's onDone waits for the new actor") {
    handles[0].resolve(1);  // its done event is queued behind RE
    REQUIRE_FALSE(t.s->send(xsn::event("RE")));
    t.settle();
    CHECK(t.states() == std::vector<std::string>{"m.wait"});
    CHECK(log.empty());
    REQUIRE(handles.size() == 2);
    handles[1].resolve(2);
    t.settle();
    CHECK(t.states() == std::vector<std::string>{"m.ok"});
    CHECK(log == std::vector<std::string>{R"(ok xstate.done.actor.f {"output":2,"actorId":"f"})"});
  }
  SECTION("left: the next state never sees it, nor an error event") {
    handles[0].reject("late");
    REQUIRE_FALSE(t.s->send(xsn::event("LEAVE")));
    t.settle();
    CHECK(t.states() == std::vector<std::string>{"m.idle"});
    CHECK(log.empty());
  }
}

TEST_CASE("xstate actors: a spawned actor starts when the macrostep that spawned it is done") {
  // As XState 5.33.3 (checked on the same machines): the parent's later actions run first, what
  // the parent sends the child meanwhile waits for it, and a child stopped in the same
  // macrostep never starts.
  std::vector<std::string> log;
  xsn::implementations child_impl;
  child_impl.action("hello", [&log](xsn::value&, const xsn::event&, const xsn::value&) { log.push_back("child entry"); });
  child_impl.action("got", [&log](xsn::value&, const xsn::event& ev, const xsn::value&) { log.push_back("child got " + ev.name); });
  xsn::implementations impl;
  impl.actor("child", xsn::actor_logic::machine(chart_of(R"({"id": "child", "initial": "run", "entry": "hello",
    "states": {"run": {"on": {"HI": {"actions": "got"}}}}})"), child_impl));
  impl.action("mark", [&log](xsn::value&, const xsn::event&, const xsn::value& p) { log.emplace_back(p.at("m").as_string()); });
  tree t(R"({"id": "p", "initial": "a", "states": {"a": {"on": {
    "KEEP": {"actions": [{"type": "spawnChild", "src": "child", "id": "k"}, {"type": "mark", "params": {"m": "after spawn"}},
                         {"type": "sendTo", "to": "k", "event": {"type": "HI"}}, {"type": "mark", "params": {"m": "after send"}}]},
    "DROP": {"actions": [{"type": "spawnChild", "src": "child", "id": "d"}, {"type": "sendTo", "to": "d", "event": {"type": "HI"}},
                         {"type": "stopChild", "id": "d"}, {"type": "mark", "params": {"m": "after stop"}}]}}}}})", impl);
  t.start();
  t.send("KEEP");
  CHECK(log == std::vector<std::string>{"after spawn", "after send", "child entry", "child got HI"});
  CHECK(t.snap().at("children").as_object().contains("k"));
  log.clear();
  t.send("DROP");
  CHECK(log == std::vector<std::string>{"after stop"});
  CHECK_FALSE(t.snap().at("children").as_object().contains("d"));
}

TEST_CASE("xstate actors: settling a promise whose actor was stopped does nothing") {
  const char* json = R"({
    "id": "m", "initial": "wait",
    "states": {
      "wait": {"invoke": {"src": "fetch", "id": "f", "onDone": "ok"}, "on": {"cancel": "idle"}},
      "idle": {}, "ok": {}
    }
  })";
  std::optional<xsn::promise_handle> handle;
  xsn::implementations impl;
  impl.actor("fetch", xsn::actor_logic::promise([&](const xsn::value&, xsn::promise_handle h) { handle = h; }));
  tree t(json, impl);
  t.start();
  REQUIRE(handle);
  CHECK_FALSE(handle->cancelled());
  t.send("cancel");
  CHECK(handle->cancelled());
  handle->resolve(1);
  t.settle();
  CHECK(t.states() == std::vector<std::string>{"m.idle"});
  SECTION("and after the session is gone") {
    t.s.reset();
    handle->resolve(2);
    t.settle();
  }
}

TEST_CASE("xstate actors: a callback actor receives sendTo and forwardTo, sends back, and is cleaned up") {
  const char* json = R"({
    "id": "m", "initial": "on",
    "states": {
      "on": {
        "invoke": {"src": "ticker", "id": "t", "input": {"every": 5}},
        "on": {
          "poke": {"actions": [{"type": "forwardTo", "to": "t"}]},
          "tell": {"actions": [{"type": "sendTo", "to": "t", "event": {"type": "told", "x": 1}}]},
          "tick": {"actions": [{"type": "log", "params": {"tag": "tick", "event": true}}]},
          "off": "off"
        }
      },
      "off": {}
    }
  })";
  std::vector<std::string> log;
  std::function<void(xsn::event)> send_back;
  int cleanups = 0;
  auto impl = recorders(log, "");
  impl.actor("ticker", xsn::actor_logic::callback([&](xsn::callback_args& args) -> std::function<void()> {
    log.push_back("started " + boost::json::serialize(args.input));
    send_back = args.send_back;
    args.receive([&log, sb = args.send_back](const xsn::event& ev) {
      log.push_back("received " + ev.name + " " + boost::json::serialize(ev.data));
      sb(xsn::event("tick", xsn::value(ev.name)));
    });
    return [&cleanups] { ++cleanups; };
  }));
  tree t(json, impl);
  t.start();
  CHECK(log == std::vector<std::string>{R"(started {"every":5})"});
  t.send("poke", boost::json::parse(R"({"k":2})"));
  t.send("tell");
  CHECK(log == std::vector<std::string>{R"(started {"every":5})", R"(received poke {"k":2})", R"(tick tick "poke")",
                                        R"(received told {"x":1})", R"(tick tick "told")"});
  t.send("off");
  CHECK(cleanups == 1);
  const auto before = log.size();
  send_back(xsn::event("tick"));  // after the stop: nothing arrives
  t.settle();
  CHECK(log.size() == before);
  CHECK(t.states() == std::vector<std::string>{"m.off"});
}

TEST_CASE("xstate actors: spawnChild, stopChild and sendTo by systemId across the tree") {
  // The parent spawns a callback actor registered as `logger`; its invoked child machine sends to
  // `logger` by systemId.
  const char* parent = R"({
    "id": "p", "initial": "a",
    "states": {
      "a": {
        "entry": [{"type": "spawnChild", "src": "logger", "id": "lg", "systemId": "logger", "input": "L"}],
        "invoke": {"src": "worker", "id": "w"},
        "on": {
          "work": {"actions": [{"type": "forwardTo", "to": "w"}]},
          "stop": {"actions": [{"type": "stopChild", "id": "lg"}]},
          "stop_unknown": {"actions": [{"type": "stopChild", "id": "nobody"}]},
          "respawn": {"actions": [{"type": "spawnChild", "src": "logger", "id": "lg", "systemId": "logger"}]}
        }
      }
    }
  })";
  const char* worker = R"({
    "id": "w", "initial": "s",
    "states": {"s": {"on": {"work": {"actions": [{"type": "sendTo", "to": "logger", "event": {"type": "note", "from": "w"}}]}}}}
  })";
  std::vector<std::string> log;
  int cleanups = 0;
  xsn::implementations impl;
  impl.actor("logger", xsn::actor_logic::callback([&](xsn::callback_args& args) -> std::function<void()> {
    args.receive([&log](const xsn::event& ev) { log.push_back(ev.name + " " + boost::json::serialize(ev.data)); });
    return [&cleanups] { ++cleanups; };
  }));
  impl.actor("worker", xsn::actor_logic::machine(chart_of(worker)));
  tree t(parent, impl);
  t.start();
  auto children = t.snap().at("children").as_object();
  REQUIRE(children.contains("lg"));
  CHECK(children.at("lg").at("systemId") == "logger");
  CHECK_FALSE(children.at("lg").as_object().contains("invoke"));  // spawned, not invoked
  t.send("work");
  CHECK(log == std::vector<std::string>{R"(note {"from":"w"})"});
  t.send("stop_unknown");
  CHECK(t.status() == "active");
  t.send("stop");
  CHECK(cleanups == 1);
  CHECK_FALSE(t.snap().at("children").as_object().contains("lg"));
  t.send("respawn");  // the id and systemId are free again
  CHECK(t.snap().at("children").as_object().contains("lg"));
  t.send("respawn");  // now they are taken: the machine fails, as XState's does
  CHECK(t.status() == "error");
  CHECK(cleanups == 2);  // a failed machine stops its children
}

TEST_CASE("xstate actors: C++ actions use action_scope to spawn, send to, stop children and send to the parent") {
  const char* parent = R"({
    "id": "p", "initial": "a",
    "states": {"a": {"on": {"make": {"actions": ["make"]}, "poke": {"actions": ["poke"]}, "kill": {"actions": ["kill"]},
                             "hello": {"actions": [{"type": "log", "params": {"tag": "hello", "event": true}}]}}}}
  })";
  const char* kid = R"({
    "id": "k", "initial": "s",
    "states": {"s": {"on": {"poke": {"actions": ["reply"]}}}}
  })";
  std::vector<std::string> log;
  xsn::implementations kid_impl;
  kid_impl.action("reply", xsn::action_fn([](xsn::value& ctx, const xsn::event&, const xsn::value&, xsn::action_scope& self) {
    self.send_parent(xsn::event("hello", ctx));
  }));
  auto impl = recorders(log, "");
  impl.actor("kid", xsn::actor_logic::machine(chart_of(kid), kid_impl, [](const xsn::value& input) {
    return xsn::value(boost::json::object{{"name", input}});
  }));
  std::string spawned;
  impl.action("make", xsn::action_fn([&](xsn::value&, const xsn::event&, const xsn::value&, xsn::action_scope& self) {
    spawned = self.spawn("kid", {"", "", xsn::value("kiddo")});
  }));
  impl.action("poke", xsn::action_fn([&](xsn::value&, const xsn::event&, const xsn::value&, xsn::action_scope& self) {
    self.send_to(spawned, xsn::event("poke"));
  }));
  impl.action("kill", xsn::action_fn([&](xsn::value&, const xsn::event&, const xsn::value&, xsn::action_scope& self) {
    self.stop_child(spawned);
  }));
  tree t(parent, impl);
  t.start();
  t.send("make");
  CHECK_FALSE(spawned.empty());
  CHECK(t.snap().at("children").at(spawned).at("snapshot").at("context") == boost::json::parse(R"({"name":"kiddo"})"));
  t.send("poke");
  CHECK(log == std::vector<std::string>{R"(hello hello {"name":"kiddo"})"});
  t.send("kill");
  CHECK(t.snap().at("children").as_object().empty());
  t.send("poke");  // an unknown child: the action throws, the machine fails
  CHECK(t.status() == "error");
  REQUIRE_FALSE(t.errors.empty());
  CHECK(t.errors.back().find("no actor") != std::string::npos);
}

TEST_CASE("xstate actors: a child machine sees its input in xstate.init") {
  const char* parent = R"({"id": "p", "initial": "a", "states": {"a": {"invoke": {"src": "kid", "id": "k", "input": {"n": 3}}}}})";
  const char* kid = R"({"id": "k", "initial": "s", "states": {"s": {"entry": [{"type": "log", "params": {"tag": "init", "event": true}}]}}})";
  std::vector<std::string> log;
  auto impl = recorders(log, "");
  impl.actor("kid", xsn::actor_logic::machine(chart_of(kid), recorders(log, "")));
  tree t(parent, impl);
  t.start();
  CHECK(log == std::vector<std::string>{R"(init xstate.init {"input":{"n":3}})"});
}

TEST_CASE("xstate actors: sendParent without a parent and sendTo an unknown actor fail the machine") {
  const char* json = R"({"id": "m", "initial": "a", "states": {"a": {"on": {
    "up": {"actions": [{"type": "sendParent", "event": "x"}]},
    "out": {"actions": [{"type": "sendTo", "to": "ghost", "event": "x"}]}}}}})";
  for (const char* ev : {"up", "out"}) {
    tree t(json, xsn::implementations{});
    t.start();
    t.send(ev);
    CHECK(t.status() == "error");
  }
}

TEST_CASE("xstate actors: async_send completes after the macrostep, with the child's synchronous effects") {
  std::vector<std::string> log;
  tree t(parent_json, parent_impl(log));
  t.start();
  auto f = t.s->async_send(xsn::event("go"), boost::asio::use_future);
  t.settle();
  auto [ec, states] = f.get();
  CHECK_FALSE(ec);
  CHECK(states == std::vector<std::string>{"p.busy"});
  CHECK(log == std::vector<std::string>{"parent entry", "child entry"});  // the child started in that macrostep
}

TEST_CASE("xstate actors: binding fails for an actor not provided, or a child machine missing its names") {
  std::vector<std::string> log;
  auto chart = chart_of(parent_json);
  auto no_actor = xsn::bind(*chart, recorders(log, ""));
  REQUIRE_FALSE(no_actor);
  CHECK(no_actor.error().message == "actor 'child' is not provided");
  auto impl = recorders(log, "");
  impl.actor("child", xsn::actor_logic::machine(chart_of(child_json)));  // without `log`, `explode`
  auto r = xsn::bind(*chart, impl);
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().message.find("actor 'child': ") == 0);  // every name the child misses, at once
  CHECK(r.error().message.find("action 'log' is not provided") != std::string::npos);
  CHECK(r.error().message.find("action 'explode' is not provided") != std::string::npos);
  xsn::implementations bad;
  bad.actor("child", xsn::actor_logic::promise(nullptr));
  bad.provide(recorders(log, ""));
  CHECK_FALSE(xsn::bind(*chart, bad));
  xsn::implementations scxml;
  scxml.actor("child", xsn::actor_logic::machine(nullptr));
  scxml.provide(recorders(log, ""));
  CHECK_FALSE(xsn::bind(*chart, scxml));
  // Without implementations at all the session refuses to set up, naming the actor.
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::vector<std::string> errors;
  xsn::session_options o;
  o.make_datamodel = xsn::xstate_datamodel(nullptr);
  o.on_log = [&](std::string_view, std::string_view m) { errors.emplace_back(m); };
  xsn::session s(chart_of(R"({"initial": "a", "states": {"a": {"invoke": {"src": "x"}}}})"), ioc.get_executor(), clk, std::move(o));
  s.start();
  REQUIRE_FALSE(errors.empty());
  CHECK(errors.front().find("actor 'x' is not provided") != std::string::npos);
}

TEST_CASE("xstate actors: malformed invoke configs and actor actions are located errors") {
  auto wrap = [](const std::string& state) { return R"({"initial": "a", "states": {"a": )" + state + "}}"; };
  struct bad_case {
    std::string state;
    std::string message;
  };
  const std::vector<bad_case> cases = {
      {R"({"invoke": 3})", "an invoke must be an object"},
      {R"({"invoke": [{"src": "x"}, "y"]})", "an invoke must be an object"},
      {R"({"invoke": {}})", "'src' is required"},
      {R"({"invoke": {"src": ""}})", "'src' must be a non-empty string"},
      {R"({"invoke": {"src": 5}})", "'src' must be a non-empty string"},
      {R"({"invoke": {"src": {"initial": "x"}}})", "inline actor logic is not supported"},
      {R"({"invoke": {"src": "x", "id": 1}})", "'id' must be a non-empty string"},
      {R"({"invoke": {"src": "x", "id": ""}})", "'id' must be a non-empty string"},
      {R"({"invoke": {"src": "x", "systemId": []}})", "'systemId' must be a non-empty string"},
      {R"({"invoke": {"src": "x", "onDone": 4}})", "a transition must be"},
      {R"({"invoke": {"src": "x", "onError": {"target": "nowhere"}}})", "unknown target 'nowhere'"},
      {R"({"invoke": {"src": "x", "onSnapshot": "a"}})", "'onSnapshot' is not supported yet"},
      {R"({"invoke": [{"src": "x", "id": "d"}, {"src": "y", "id": "d"}]})", "duplicate invoke id 'd'"},
      {R"({"entry": [{"type": "sendTo", "event": "x"}]})", "'sendTo' needs 'to'"},
      {R"({"entry": [{"type": "sendTo", "to": 3, "event": "x"}]})", "'sendTo' needs 'to'"},
      {R"({"entry": [{"type": "sendTo", "to": "c"}]})", "'event' must be an event name or an object"},
      {R"({"entry": [{"type": "sendTo", "to": "c", "event": {"n": 1}}]})", "'event' must be an event name or an object"},
      {R"({"entry": [{"type": "sendParent", "event": 7}]})", "'event' must be an event name or an object"},
      {R"({"entry": [{"type": "forwardTo"}]})", "'forwardTo' needs 'to'"},
      {R"({"entry": [{"type": "stopChild", "id": ""}]})", "'stopChild' needs 'id'"},
      {R"({"entry": [{"type": "spawnChild"}]})", "'src' is required"},
      {R"({"entry": [{"type": "spawnChild", "src": "x", "systemId": 1}]})", "'systemId' must be a non-empty string"},
  };
  for (const auto& c : cases) {
    INFO(c.state);
    auto err = parse_error(wrap(c.state));
    CHECK(err.find(c.message) != std::string::npos);
    CHECK(err.find("bad.json:1:") == 0);  // located: line and column
    CHECK(err.find("(at /states/a") != std::string::npos);
  }
  // A history state cannot invoke.
  CHECK(parse_error(R"({"initial": "a", "states": {"a": {}, "h": {"type": "history", "invoke": {"src": "x"}}}})").find("cannot have 'invoke'") !=
        std::string::npos);
}

namespace {

/// The snapshot without what differs between runs by construction (generated session ids).
xsn::value comparable(const xsn::value& v) {
  if (const auto* o = v.if_object()) {
    boost::json::object out;
    for (const auto& [k, x] : *o)
      if (k != "sessionid" && k != "sendid" && k != "origin") out[k] = comparable(x);
    return out;
  }
  if (const auto* a = v.if_array()) {
    boost::json::array out;
    for (const auto& x : *a) out.push_back(comparable(x));
    return out;
  }
  return v;
}

struct replay_step {
  std::vector<std::string> events;
  int advance_ms = 0;
};

void apply(tree& t, const replay_step& st) {
  t.settle();
  for (const auto& e : st.events) REQUIRE_FALSE(t.s->send(xsn::event(e)));
  t.settle();
  auto target = t.clk.now() + std::chrono::milliseconds(st.advance_ms);
  while (t.clk.fire_next(target)) t.settle();
  t.clk.advance_to(target);
  t.settle();
}

std::string observe(tree& t) { return boost::json::serialize(comparable(t.snap())); }

const char* family_parent = R"({
  "id": "p", "initial": "idle", "context": {"beats": 0},
  "states": {
    "idle": {"on": {"GO": "work", "SPAWN": {"actions": [{"type": "spawnChild", "src": "kid", "id": "s", "systemId": "spare", "input": {"start": 100}}]}}},
    "work": {
      "invoke": [
        {"src": "kid", "id": "k", "input": {"start": 5}, "onDone": {"target": "finished", "actions": ["store"]}},
        {"src": "calc", "id": "c", "input": 3, "onDone": {"actions": ["store"]}}
      ],
      "on": {
        "beat": {"actions": ["count"]},
        "POKE": {"actions": [{"type": "sendTo", "to": "k", "event": "poke"}]},
        "POKE_SPARE": {"actions": [{"type": "sendTo", "to": "spare", "event": "poke"}]},
        "SPAWN": {"actions": [{"type": "spawnChild", "src": "kid", "id": "s", "systemId": "spare", "input": {"start": 100}}]},
        "STOP": {"actions": [{"type": "stopChild", "id": "s"}]},
        "FINISH": {"actions": [{"type": "forwardTo", "to": "k"}]},
        "PAUSE": "idle"
      }
    },
    "finished": {"type": "final"}
  }
})";

const char* family_kid = R"({
  "id": "kid", "initial": "run", "output": {"finished": true},
  "states": {
    "run": {
      "after": {"300": {"target": "run", "reenter": true, "actions": ["tick", {"type": "sendParent", "event": "beat"}]}},
      "on": {"poke": {"actions": ["tick"]}, "FINISH": "end"}
    },
    "end": {"type": "final"}
  }
})";

xsn::implementations family_impl() {
  xsn::implementations kid;
  kid.action("tick", [](xsn::value& ctx, const xsn::event&, const xsn::value&) {
    ctx.as_object()["n"] = ctx.at("n").to_number<std::int64_t>() + 1;
  });
  xsn::implementations impl;
  impl.actor("kid", xsn::actor_logic::machine(chart_of(family_kid), kid, [](const xsn::value& input) {
    return xsn::value(boost::json::object{{"n", input.at("start")}});
  }));
  impl.actor("calc", xsn::actor_logic::promise([](const xsn::value& input, xsn::promise_handle h) {
    h.resolve(input.to_number<std::int64_t>() * 2);
  }));
  impl.action("count", [](xsn::value& ctx, const xsn::event&, const xsn::value&) {
    ctx.as_object()["beats"] = ctx.at("beats").to_number<std::int64_t>() + 1;
  });
  impl.action("store", [](xsn::value& ctx, const xsn::event& ev, const xsn::value&) {
    ctx.as_object()[ev.name] = ev.data.at("output");
  });
  return impl;
}

}  // namespace

TEST_CASE("xstate actors: a snapshot holds the children recursively, in XState's persisted shape") {
  tree t(family_parent, family_impl());
  t.start();
  apply(t, {{"GO", "SPAWN"}, 100});
  auto snap = t.snap();
  const auto& children = snap.at("children").as_object();
  REQUIRE(children.size() == 2);  // the promise `c` has resolved and left
  CHECK(children.at("k").at("src") == "kid");
  CHECK(children.at("k").at("invoke") == 0);
  CHECK(children.at("k").at("snapshot").at("context") == boost::json::parse(R"({"n":5})"));
  CHECK(children.at("k").at("snapshot").at("value") == "run");
  CHECK(children.at("s").at("systemId") == "spare");
  CHECK(children.at("s").at("snapshot").at("status") == "active");
  CHECK(snap.at("context").at("xstate.done.actor.c") == 6);
}

TEST_CASE("xstate actors: restoring at every step behaves as the uninterrupted run, children included") {
  const std::vector<replay_step> steps = {{{"GO"}, 100},         {{"POKE"}, 250},  {{"SPAWN"}, 400}, {{"POKE_SPARE"}, 0},
                                          {{"PAUSE"}, 100},      {{"GO"}, 350},    {{"STOP"}, 300},  {{"SPAWN", "POKE_SPARE"}, 650},
                                          {{"FINISH"}, 0},       {{}, 300}};
  std::vector<std::string> expected;
  {
    tree t(family_parent, family_impl());
    t.start();
    expected.push_back(observe(t));
    for (const auto& st : steps) {
      apply(t, st);
      expected.push_back(observe(t));
    }
    CHECK(t.status() == "done");
  }
  for (std::size_t k = 0; k <= steps.size(); ++k) {
    INFO("restored after step " << k);
    std::string text;
    std::chrono::nanoseconds now{};
    {
      tree t(family_parent, family_impl());
      t.start();
      for (std::size_t i = 0; i < k; ++i) apply(t, steps[i]);
      text = boost::json::serialize(t.snap());
      now = t.clk.now().time_since_epoch();
    }
    tree r(family_parent, family_impl());
    r.clk.advance_to(xsn::clock::time_point(now));
    REQUIRE_FALSE(r.s->restore_json(text));
    r.settle();
    REQUIRE(observe(r) == expected[k]);
    for (std::size_t i = k; i < steps.size(); ++i) {
      INFO("step " << i);
      apply(r, steps[i]);
      REQUIRE(observe(r) == expected[i + 1]);
    }
  }
}

TEST_CASE("xstate actors: malformed children in a snapshot are refused, changing nothing") {
  tree t(family_parent, family_impl());
  t.start();
  apply(t, {{"GO", "SPAWN"}, 100});
  const auto good = t.snap();
  auto with_child = [&](const std::string& id, xsn::value entry) {
    auto s = good;
    s.as_object()["children"].as_object()[id] = std::move(entry);
    return s;
  };
  const std::vector<xsn::value> bad = {
      with_child("k", 3),
      with_child("k", boost::json::parse(R"({"snapshot": {}})")),
      with_child("k", boost::json::parse(R"({"src": 1, "snapshot": {}})")),
      with_child("k", boost::json::parse(R"({"src": "nobody", "snapshot": {}})")),
      with_child("k", boost::json::parse(R"({"src": "kid", "snapshot": 5})")),
      with_child("k", boost::json::parse(R"({"src": "kid", "snapshot": {}, "invoke": 7})")),
      with_child("k", boost::json::parse(R"({"src": "kid", "snapshot": {}, "invoke": 1})")),  // invoke 1 is `calc`
      with_child("k", boost::json::parse(R"({"src": "kid", "snapshot": {}, "invoke": "0"})")),
      with_child("k", boost::json::parse(R"({"src": "kid", "snapshot": {"configuration": ["nowhere"]}})")),
      with_child("s", boost::json::parse(R"({"src": "kid", "snapshot": {}, "systemId": 4})")),
      with_child("c", boost::json::parse(R"({"src": "calc", "snapshot": {"status": 1}})")),
  };
  for (const auto& b : bad) {
    INFO(boost::json::serialize(b));
    tree r(family_parent, family_impl());
    CHECK(r.s->restore(b) == xsn::errc::bad_snapshot);
    CHECK_FALSE(r.errors.empty());
    CHECK(r.snap().at("children").as_object().empty());
    r.start();  // a refused restore leaves a fresh session
    CHECK(r.states() == std::vector<std::string>{"p.idle"});
  }
}

TEST_CASE("xstate actors: restore restarts a pending promise actor with its input, as XState does") {
  const char* json = R"({
    "id": "m", "initial": "wait",
    "states": {"wait": {"invoke": {"src": "fetch", "id": "f", "input": {"q": 1}, "onDone": "ok"}}, "ok": {}}
  })";
  std::vector<xsn::value> inputs;
  std::vector<xsn::promise_handle> handles;
  xsn::implementations impl;
  impl.actor("fetch", xsn::actor_logic::promise([&](const xsn::value& input, xsn::promise_handle h) {
    inputs.push_back(input);
    handles.push_back(h);
  }));
  std::string text;
  {
    tree t(json, impl);
    t.start();
    auto snap = t.snap();
    CHECK(snap.at("children").at("f").at("snapshot") == boost::json::parse(R"({"status":"active","input":{"q":1}})"));
    text = boost::json::serialize(snap);
  }
  REQUIRE(handles.size() == 1);
  CHECK(handles[0].cancelled());  // its session is gone
  tree r(json, impl);
  REQUIRE_FALSE(r.s->restore_json(text));
  REQUIRE(handles.size() == 2);
  CHECK(inputs[1] == boost::json::parse(R"({"q":1})"));
  handles[1].resolve(nullptr);
  r.settle();
  CHECK(r.states() == std::vector<std::string>{"m.ok"});
}
