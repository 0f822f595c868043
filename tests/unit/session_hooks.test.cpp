#include <xsn/runtime/session.hpp>

#include "catch.hpp"
#include "session_driver.hpp"

#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/actors.hpp>
#include <xsn/runtime/implementations.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

// What an embedding (the orchestrator) reads from and hooks into a session: `route` with the
// root session, `sendTo` beyond the actor tree, status, error, transitions taken, session ids.

namespace {

std::shared_ptr<const xsn::statechart> scxml(const std::string& body) {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\">" + body + "</scxml>", "test.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

/// What `route` was given.
struct routed {
  xsn::session* root = nullptr;
  std::string target;
  std::string event;
};

/// An XState machine with implementations `impl`, not started.
struct machine : xsn_test::session_driver {
  machine(const std::string& json, const xsn::implementations& impl) : session_driver(xsn_test::xstate_chart(json)) {
    bound = xsn_test::bound(*chart, impl);
    datamodel = xsn::xstate_datamodel(bound);
  }
  std::shared_ptr<const xsn::bound_implementations> bound;
};

}  // namespace

TEST_CASE("session hooks: route gets the root session, also for a send from an invoked child") {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::vector<routed> got;
  xsn::session_options o;
  o.route = [&](xsn::session& root, const std::string& target, xsn::event ev) {
    got.push_back({&root, target, ev.name});
    return true;
  };
  xsn::session s(scxml(R"(<state id="s">
      <onentry><send target="xsn:other" event="from.root"/></onentry>
      <invoke id="kid"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0">
        <state id="k"><onentry><send target="xsn:other" event="from.child"/></onentry></state></scxml></content></invoke>
    </state>)"),
                 ioc.get_executor(), clk, std::move(o));
  s.start();
  ioc.poll();
  REQUIRE(got.size() == 2);
  CHECK(got[0].event == "from.root");
  CHECK(got[1].event == "from.child");
  for (const auto& r : got) {
    CHECK(r.root == &s);  // the child's own session is not what the embedding created
    CHECK(r.target == "xsn:other");
  }
}

TEST_CASE("session hooks: sendTo an id outside the actor tree goes to route as xsn:ID, with the root") {
  const char* kid = R"({"id": "kid", "initial": "k", "states": {"k": {
    "entry": [{"type": "sendTo", "to": "elsewhere", "event": {"type": "hello", "n": 1}}]}}})";
  const char* parent = R"({"id": "p", "initial": "a", "states": {"a": {
    "invoke": {"src": "kid", "id": "child"},
    "on": {"go": {"actions": [{"type": "sendTo", "to": "neighbour", "event": "nudge"}]}}}}})";
  xsn::implementations impl;
  impl.actor("kid", xsn::actor_logic::machine(xsn_test::xstate_chart(kid), xsn::implementations{}));
  machine m(parent, impl);
  std::vector<routed> got;
  std::string data;
  m.options = [&](xsn::session_options& o) {
    o.route = [&](xsn::session& root, const std::string& target, xsn::event ev) {
      got.push_back({&root, target, ev.name});
      if (!ev.data.is_null()) data = boost::json::serialize(ev.data);
      return true;
    };
  };
  m.open(m.datamodel);
  REQUIRE(got.size() == 1);
  CHECK(got[0].root == m.s.get());  // sent by the child machine: the root is its parent
  CHECK(got[0].target == "xsn:elsewhere");
  CHECK(got[0].event == "hello");
  CHECK(data == R"({"n":1})");
  m.send("go");
  REQUIRE(got.size() == 2);
  CHECK(got[1].root == m.s.get());
  CHECK(got[1].target == "xsn:neighbour");
  CHECK(got[1].event == "nudge");
  CHECK(m.status() == "active");
}

TEST_CASE("session hooks: sendTo an unknown id fails the machine when route cannot deliver it") {
  const char* json = R"({"id": "m", "initial": "a", "states": {"a": {"on": {
    "out": {"actions": [{"type": "sendTo", "to": "ghost", "event": "x"}]}}}}})";
  machine m(json, xsn::implementations{});
  std::vector<std::string> targets;
  m.options = [&](xsn::session_options& o) {
    o.route = [&](xsn::session&, const std::string& target, xsn::event) {
      targets.push_back(target);
      return false;
    };
  };
  m.open(m.datamodel);
  m.send("out");
  CHECK(targets == std::vector<std::string>{"xsn:ghost"});
  CHECK(m.status() == "error");
  REQUIRE_FALSE(m.errors.empty());
  CHECK_THAT(m.errors.front(), Catch::Matchers::ContainsSubstring("'ghost'") &&
                                   Catch::Matchers::ContainsSubstring("'xsn:ghost'"));
}

TEST_CASE("session hooks: status() through created, active, done, stopped and error") {
  CHECK(xsn::to_string(xsn::session_status::created) == "created");
  CHECK(xsn::to_string(xsn::session_status::active) == "active");
  CHECK(xsn::to_string(xsn::session_status::done) == "done");
  CHECK(xsn::to_string(xsn::session_status::error) == "error");
  CHECK(xsn::to_string(xsn::session_status::stopped) == "stopped");
  const char* json = R"({"id": "m", "initial": "a", "states": {
    "a": {"on": {"finish": "end", "fail": {"actions": ["explode"]}}},
    "end": {"type": "final"}}})";
  xsn::implementations impl;
  impl.action("explode", [](xsn::value&, const xsn::event&, const xsn::value&) { throw std::runtime_error("kaboom"); });
  auto status_is = [](xsn::session& s, xsn::session_status want) {
    CHECK(s.status() == want);
    CHECK(std::string_view(s.snapshot().at("status").as_string()) == xsn::to_string(want));  // the snapshot's
  };
  SECTION("created, active, done") {
    machine m(json, impl);
    m.open(m.datamodel, false);
    status_is(*m.s, xsn::session_status::created);
    m.start();
    status_is(*m.s, xsn::session_status::active);
    m.send("finish");
    status_is(*m.s, xsn::session_status::done);
  }
  SECTION("stopped") {
    machine m(json, impl);
    m.open(m.datamodel);
    m.s->stop();
    status_is(*m.s, xsn::session_status::stopped);
  }
  SECTION("error, also once restored") {
    machine m(json, impl);
    m.open(m.datamodel);
    m.send("fail");
    status_is(*m.s, xsn::session_status::error);
    auto again = m.make();
    REQUIRE_FALSE(again->restore(m.s->snapshot()));
    status_is(*again, xsn::session_status::error);
  }
  SECTION("an SCXML session: done, and stopped when cancelled") {
    boost::asio::io_context ioc;
    xsn::manual_clock clk;
    auto c = scxml(R"(<state id="s"><transition event="go" target="f"/></state><final id="f"/>)");
    xsn::session a(c, ioc.get_executor(), clk), b(c, ioc.get_executor(), clk);
    a.start();
    b.start();
    status_is(a, xsn::session_status::active);
    REQUIRE_FALSE(a.process(xsn::event("go")));
    status_is(a, xsn::session_status::done);
    b.stop();
    status_is(b, xsn::session_status::stopped);
  }
}

TEST_CASE("session hooks: sendParent in a top-level machine fails it with a located error") {
  struct site {
    const char* json;
    const char* event;  // sent after start; empty: it fails at start
    const char* message;
  };
  const site sites[] = {
      {R"({"id": "ping", "initial": "idle", "states": {"idle": {"entry": [{"type": "sendParent", "event": "hi"}]}}})", "",
       "sendParent in state 'ping.idle' (entry): machine 'ping' has no parent"},
      {R"({"id": "ping", "initial": "idle", "states": {"idle": {"on": {"go": {"target": "b", "actions": [{"type": "sendParent", "event": "hi"}]}}}, "b": {}}})",
       "go", "sendParent in state 'ping.idle' (transition on 'go'): machine 'ping' has no parent"},
      {R"({"id": "ping", "initial": "idle", "states": {"idle": {"exit": [{"type": "sendParent", "event": "hi"}], "on": {"go": "b"}}, "b": {}}})",
       "go", "sendParent in state 'ping.idle' (exit): machine 'ping' has no parent"},
      // A C++ action calling action_scope::send_parent: the same message.
      {R"({"id": "ping", "initial": "idle", "states": {"idle": {"on": {"go": {"actions": ["tell"]}}}}})", "go",
       "sendParent in state 'ping.idle' (transition on 'go'): machine 'ping' has no parent"},
  };
  xsn::implementations impl;
  impl.action("tell", [](xsn::value&, const xsn::event&, const xsn::value&, xsn::action_scope& self) { self.send_parent(xsn::event("hi")); });
  for (const auto& x : sites) {
    INFO(x.json);
    machine m(x.json, impl);
    m.open(m.datamodel);
    if (*x.event) {
      CHECK(m.s->status() == xsn::session_status::active);
      CHECK(m.s->error().is_null());
      m.send(x.event);
    }
    CHECK(m.s->status() == xsn::session_status::error);
    CHECK(m.s->error() == xsn::value(x.message));
    CHECK(m.errors == std::vector<std::string>{x.message});  // logged once, as it is
    // The snapshot carries it: a restored session has failed for the same reason.
    auto again = m.make();
    REQUIRE_FALSE(again->restore(m.s->snapshot()));
    CHECK(again->status() == xsn::session_status::error);
    CHECK(again->error() == xsn::value(x.message));
  }
}

TEST_CASE("session hooks: error() is null unless the session failed") {
  machine m(R"({"id": "m", "initial": "a", "states": {"a": {"on": {"end": "f"}}, "f": {"type": "final"}}})", xsn::implementations{});
  m.open(m.datamodel, false);
  CHECK(m.s->error().is_null());
  m.start();
  CHECK(m.s->error().is_null());
  m.send("end");
  CHECK(m.s->status() == xsn::session_status::done);
  CHECK(m.s->error().is_null());
  CHECK_FALSE(m.s->snapshot().as_object().contains("error"));
}

TEST_CASE("session hooks: transitions_taken counts the transitions of every microstep, none for an ignored event") {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session s(scxml(R"(<state id="main"><parallel id="p">
      <state id="A"><state id="a1"><transition event="both" target="a2"/></state><state id="a2"/></state>
      <state id="B"><state id="b1"><transition event="both" target="b2"/></state><state id="b2"><transition event="next" target="b3"/></state>
        <state id="b3"><transition target="b4"/></state><state id="b4"><transition event="stay"/></state></state>
    </parallel></state>)"),
                 ioc.get_executor(), clk);
  CHECK(s.transitions_taken() == 0);
  s.start();
  CHECK(s.transitions_taken() == 0);  // the initial entry is no transition taken
  auto taken_by = [&](const char* name) {
    const auto before = s.transitions_taken();
    REQUIRE_FALSE(s.process(xsn::event(name)));
    return s.transitions_taken() - before;
  };
  CHECK(taken_by("nothing") == 0);
  CHECK(taken_by("both") == 2);   // one microstep, one transition per region
  CHECK(taken_by("next") == 2);   // next, then the eventless b3 -> b4
  CHECK(taken_by("stay") == 1);   // a targetless transition is taken too
  CHECK(taken_by("both") == 0);
  CHECK(s.transitions_taken() == 5);
}

TEST_CASE("session hooks: transitions_taken in an XState machine, and from 0 once restored") {
  machine m(R"({"id": "m", "initial": "a", "states": {
    "a": {"on": {"go": "b"}},
    "b": {"always": "c"},
    "c": {"on": {"go": {"guard": "never", "target": "a"}}}}})", xsn::implementations{}.guard("never", [](const xsn::value&, const xsn::event&, const xsn::value&) { return false; }));
  m.open(m.datamodel);
  CHECK(m.s->transitions_taken() == 0);
  m.send("go");
  CHECK(m.s->transitions_taken() == 2);  // go, then always
  m.send("go");                         // the guard refuses: nothing taken
  CHECK(m.s->transitions_taken() == 2);
  auto again = m.make();
  REQUIRE_FALSE(again->restore(m.s->snapshot()));
  CHECK(again->transitions_taken() == 0);
}

TEST_CASE("session hooks: sessions sharing options each get the id they are given, and keep it on restore") {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  auto chart = xsn_test::xstate_chart(R"({"id": "m", "initial": "a", "states": {
    "a": {"after": {"100": "b"}, "on": {"cancel": "c"}}, "b": {}, "c": {}}})");
  auto bound = xsn_test::bound(*chart, xsn::implementations{});
  std::vector<std::string> actors;  // session ids of `@xstate.actor` inspection events
  auto shared = std::make_shared<xsn::session_options>();
  shared->make_datamodel = xsn::xstate_datamodel(bound);
  shared->inspect = [&](const xsn::inspection_event& e) {
    if (e.kind == xsn::inspection_kind::actor) actors.emplace_back(e.session_id);
  };
  std::shared_ptr<const xsn::session_options> opts = shared;
  xsn::session one(chart, ioc.get_executor(), clk, opts, "machine-1");
  xsn::session two(chart, ioc.get_executor(), clk, opts, "machine-2");
  xsn::session other(chart, ioc.get_executor(), clk, opts, "");  // empty: generated, as without one
  CHECK(one.id() == "machine-1");
  CHECK(two.id() == "machine-2");
  CHECK_FALSE(other.id().empty());
  CHECK(other.id() != one.id());
  one.start();
  two.start();
  CHECK(actors == std::vector<std::string>{"machine-1", "machine-2"});
  auto snap = one.snapshot();  // a pending `after` timer
  CHECK(snap.at("sessionid") == "machine-1");

  // A given id wins over the snapshot's.
  xsn::session restored(chart, ioc.get_executor(), clk, opts, "machine-3");
  REQUIRE_FALSE(restored.restore(snap));
  CHECK(restored.id() == "machine-3");
  CHECK(actors.back() == "machine-3");
  // The pending timer came along: it fires for the session under its new id.
  // Without a given id (nor one in the options), the snapshot's is taken, as before.
  xsn::session plain(chart, ioc.get_executor(), clk, opts);
  REQUIRE_FALSE(plain.restore(snap));
  CHECK(plain.id() == "machine-1");
  REQUIRE_FALSE(plain.process(xsn::event("cancel")));  // leaving `a` withdraws its timer
  clk.advance(std::chrono::milliseconds(100));
  ioc.restart();
  ioc.poll();
  CHECK(restored.active_atomic_states() == std::vector<std::string>{"m.b"});
  CHECK(plain.active_atomic_states() == std::vector<std::string>{"m.c"});
}
