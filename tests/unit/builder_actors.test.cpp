#include <xsn/runtime/builder.hpp>

#include "catch.hpp"
#include "session_driver.hpp"

#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/actors.hpp>
#include <xsn/runtime/session.hpp>
#include <xsn/runtime/typed.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

// Actors in machines built in C++: `xsn::invoke` in the builder, and actor logic bound through
// `implementations` (JSON context) or `typed_implementations` (typed context).

namespace {

/// A built machine's session on a private io_context and manual clock.
struct runner : xsn_test::session_driver {
  explicit runner(const xsn::built_machine& b) : session_driver(b.chart, b.datamodel()) {}
};

xsn::built_machine built(const xsn::result<xsn::built_machine>& r) {
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r);
  return *r;
}

struct job {
  int attempts = 0;
  std::string result;
};
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const job& j) {
  v = {{"attempts", j.attempts}, {"result", j.result}};
}
job tag_invoke(boost::json::value_to_tag<job>, const boost::json::value& v) {
  const auto& o = v.as_object();
  return {static_cast<int>(o.at("attempts").to_number<std::int64_t>()), std::string(o.at("result").as_string())};
}

}  // namespace

TEST_CASE("builder: invoke emits XState's invoke and runs a promise actor with input, onDone and onError") {
  std::optional<xsn::promise_handle> handle;
  xsn::value seen_input;
  xsn::implementations impl;
  impl.actor("fetch", xsn::actor_logic::promise([&](const xsn::value& input, xsn::promise_handle h) {
    seen_input = input;
    handle = h;
  }));
  std::vector<std::string> log;
  impl.action("keep", [&log](xsn::value&, const xsn::event& ev, const xsn::value&) {
    log.push_back(ev.name + " " + boost::json::serialize(ev.data));
  });
  auto m = xsn::machine("m")
               .initial("loading")
               .state("loading", xsn::invoke("fetch")
                                     .id("f")
                                     .system_id("fetcher")
                                     .input({{"url", "x"}})
                                     .on_done(xsn::on_done("ready").actions("keep"))
                                     .on_error("failed"))
               .state("ready")
               .state("failed");
  auto b = built(m.build(impl));
  CHECK(b.config.at("states").at("loading").at("invoke") == boost::json::parse(R"([{
    "src": "fetch", "id": "f", "systemId": "fetcher", "input": {"url": "x"},
    "onDone": [{"target": "ready", "actions": ["keep"]}], "onError": [{"target": "failed"}]}])"));

  runner r(b);
  REQUIRE(handle);
  CHECK(seen_input == boost::json::parse(R"({"url":"x"})"));
  CHECK(r.states() == std::vector<std::string>{"m.loading"});
  SECTION("resolved: onDone, with the output") {
    handle->resolve(42);
    r.settle();
    CHECK(r.states() == std::vector<std::string>{"m.ready"});
    CHECK(log == std::vector<std::string>{R"(xstate.done.actor.f {"output":42,"actorId":"f"})"});
  }
  SECTION("rejected: onError") {
    handle->reject("offline");
    r.settle();
    CHECK(r.states() == std::vector<std::string>{"m.failed"});
    CHECK(log.empty());
  }
}

TEST_CASE("builder: an invoked child machine's default id is XState's, and it stops when its state exits") {
  auto child_chart = xsn::parse_xstate(R"({"id": "child", "initial": "run", "output": 7,
    "states": {"run": {"on": {"FINISH": "end"}}, "end": {"type": "final"}}})", "child.json");
  REQUIRE(child_chart);
  xsn::implementations impl;
  impl.actor("child", xsn::actor_logic::machine(child_chart.chart));
  std::vector<std::string> log;
  auto m = xsn::machine("p")
               .initial("a")
               .state("a", xsn::invoke("child").on_done(xsn::on_done("done").actions([&log](const xsn::event& ev) {
                 log.push_back(ev.name + " " + boost::json::serialize(ev.data));
               })),
                      xsn::on("LEAVE", "b"),
                      xsn::on("TELL").actions([](xsn::action_scope& self) { self.send_to("0.p.a", xsn::event("FINISH")); }))
               .state("b")
               .state("done");
  auto b = built(m.build(impl));
  CHECK(b.config.at("states").at("a").at("invoke").at(0).at("src") == "child");
  CHECK_FALSE(b.config.at("states").at("a").at("invoke").at(0).as_object().contains("id"));
  runner r(b);
  auto snap = r.s->snapshot();
  REQUIRE(snap.at("children").as_object().contains("0.p.a"));  // <index>.<state id>
  SECTION("the child finishes: onDone, with its output") {
    REQUIRE_FALSE(r.s->send(xsn::event("FINISH")));  // the parent's, not the child's: ignored
    r.settle();
    CHECK(r.states() == std::vector<std::string>{"p.a"});
    REQUIRE_FALSE(r.s->send(xsn::event("TELL")));  // sendTo the child by its id
    r.settle();
    CHECK(r.states() == std::vector<std::string>{"p.done"});
    CHECK(log == std::vector<std::string>{R"(xstate.done.actor.0.p.a {"output":7,"actorId":"0.p.a"})"});
  }
  SECTION("leaving the state stops the child") {
    REQUIRE_FALSE(r.s->send(xsn::event("LEAVE")));
    r.settle();
    CHECK(r.states() == std::vector<std::string>{"p.b"});
    CHECK(r.s->snapshot().at("children").as_object().empty());
  }
}

TEST_CASE("builder: a typed machine binds actor logic through typed_implementations") {
  std::optional<xsn::promise_handle> handle;
  xsn::typed_implementations<job> base;
  base.action("count", [](job& j) { ++j.attempts; });
  base.action("store", [](job& j, const xsn::event& ev) { j.result = boost::json::serialize(ev.data.at("output")); });
  xsn::typed_implementations<job> actors;
  actors.actor("work", xsn::actor_logic::promise([&](const xsn::value&, xsn::promise_handle h) { handle = h; }));
  base.provide(actors);  // XState's provide: actor logic is merged like the rest

  auto m = xsn::machine<job>("j")
               .initial("running")
               .state("running", xsn::entry("count"),
                      xsn::invoke("work")
                          .on_done(xsn::on_done("finished").actions("store"))
                          .on_error(xsn::on_done("running").reenter()))
               .state("finished", xsn::final_state());
  auto b = built(m.build(base));
  runner r(b);
  REQUIRE(handle);
  const auto first = *handle;
  first.reject("busy");  // onError re-enters `running`: its entry again, and a new actor
  r.settle();
  CHECK(xsn::context_of<job>(*r.s)->attempts == 2);
  CHECK(first.cancelled());
  first.resolve(1);  // the stopped actor's settlement is ignored
  r.settle();
  CHECK(r.states() == std::vector<std::string>{"j.running"});
  handle->resolve({{"n", 3}});
  r.settle();
  CHECK(r.states() == std::vector<std::string>{"j.finished"});
  CHECK(xsn::context_of<job>(*r.s)->result == R"({"n":3})");

  SECTION("bind() of a JSON chart with a typed context binds its actors too") {
    auto chart = xsn::parse_xstate(R"({"id": "t", "initial": "a",
      "states": {"a": {"invoke": {"src": "work", "onDone": "b"}}, "b": {}}})", "t.json");
    REQUIRE(chart);
    auto bound = xsn::bind(*chart.chart, base, job{});
    INFO((bound ? std::string() : bound.error().message));
    CHECK(bound);
  }
}

TEST_CASE("builder: a bad invoke is a build error naming the state, never a crash") {
  xsn::implementations impl;
  impl.actor("known", xsn::actor_logic::promise([](const xsn::value&, xsn::promise_handle) {}));
  SECTION("actor logic not provided") {
    auto r = xsn::machine("m").initial("a").state("a", xsn::invoke("unknown")).build(impl);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("actor 'unknown' is not provided") != std::string::npos);
  }
  SECTION("not provided to a typed machine either") {
    auto r = xsn::machine<job>("m").initial("a").state("a", xsn::invoke("unknown")).build(xsn::typed_implementations<job>{});
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("actor 'unknown' is not provided") != std::string::npos);
  }
  SECTION("an empty src") {
    auto r = xsn::machine("m").initial("a").state("a", xsn::invoke("")).build(impl);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("src") != std::string::npos);
    CHECK(r.error().message.find("/states/a/invoke/0") != std::string::npos);
  }
  SECTION("two invokes with one id") {
    auto r = xsn::machine("m").initial("a").state("a", xsn::invoke("known").id("x"), xsn::invoke("known").id("x")).build(impl);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("duplicate invoke id 'x'") != std::string::npos);
  }
}
