#include <xsn/runtime/builder.hpp>

#include "catch.hpp"
#include "session_driver.hpp"

#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/session.hpp>
#include <xsn/runtime/typed.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// A chart's session on a private io_context and manual clock.
using runner = xsn_test::session_driver;

xsn::built_machine built(const xsn::result<xsn::built_machine>& r) {
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r);
  return *r;
}

/// Named implementations shared by the JSON and C++ versions of a machine; actions log into `log`.
xsn::implementations named(std::vector<std::string>& log) {
  xsn::implementations impl;
  impl.action("say", [&log](xsn::value&, const xsn::event&, const xsn::value& p) { log.emplace_back(p.at("m").as_string()); });
  impl.action("inc", [&log](xsn::value& ctx, const xsn::event&, const xsn::value&) {
    auto& n = ctx.as_object()["n"];
    n = n.to_number<std::int64_t>() + 1;
    log.emplace_back("inc");
  });
  impl.guard("small", [](const xsn::value& ctx, const xsn::event&, const xsn::value& p) {
    return ctx.at("n").to_number<std::int64_t>() < p.at("below").to_number<std::int64_t>();
  });
  impl.delay("later", 30ms);
  return impl;
}

/// Runs `steps` on the JSON machine and the built one; configurations and logs must agree after
/// every step.
std::string same_traces(const std::string& json, const xsn::machine_builder<>& m, const std::vector<std::string>& steps) {
  std::vector<std::string> log_json, log_built;
  auto parsed = xsn::parse_xstate(json, "expected.json");
  INFO((parsed ? std::string() : parsed.errors.front().to_string()));
  REQUIRE(parsed);
  auto bound = xsn::bind(*parsed.chart, named(log_json));
  REQUIRE(bound);
  auto b = built(m.build(named(log_built)));
  runner a(parsed.chart, xsn::xstate_datamodel(*bound));
  runner c(b.chart, b.datamodel());
  REQUIRE(a.chart->states.size() == c.chart->states.size());
  CHECK(c.config() == a.config());
  CHECK(log_built == log_json);
  for (const auto& st : steps) {
    INFO("after step " << st);
    a.step(st);
    c.step(st);
    CHECK(c.config() == a.config());
    CHECK(log_built == log_json);
    CHECK(c.status() == a.status());
    CHECK(c.s->snapshot().at("context") == a.s->snapshot().at("context"));
  }
  return c.config();
}

// ---- typed context and events ----

struct shop {
  int orders = 0;
  double total = 0;
  std::string last;
};
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const shop& s) {
  v = {{"orders", s.orders}, {"total", s.total}, {"last", s.last}};
}
shop tag_invoke(boost::json::value_to_tag<shop>, const boost::json::value& v) {
  const auto& o = v.as_object();
  return {static_cast<int>(o.at("orders").to_number<std::int64_t>()), o.at("total").to_number<double>(),
          std::string(o.at("last").as_string())};
}

struct order_placed {
  static constexpr std::string_view name = "ORDER.PLACED";
  int id = 0;
  double amount = 0;
};
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const order_placed& e) {
  v = {{"id", e.id}, {"amount", e.amount}};
}
order_placed tag_invoke(boost::json::value_to_tag<order_placed>, const boost::json::value& v) {
  const auto& o = v.as_object();
  return {static_cast<int>(o.at("id").to_number<std::int64_t>()), o.at("amount").to_number<double>()};
}

static_assert(xsn::typed_event<order_placed>);
static_assert(xsn::typed_context<shop>);
static_assert(!xsn::typed_event<shop>, "an event type needs a name");

}  // namespace

TEST_CASE("builder: the traffic light runs with inline and named actions and after") {
  int count = 0;
  std::vector<std::string> log;
  auto m = xsn::machine("light")
               .initial("green")
               .state("green", xsn::on("TIMER", "yellow"))
               .state("yellow", xsn::after(100ms, "red"))
               .state("red", xsn::on("TIMER", "green").actions([&count] { ++count; }, xsn::action_ref("say", {{"m", "back"}})))
               .build(named(log));
  auto b = built(m);
  CHECK(b.chart->semantics == xsn::chart_semantics::xstate);
  runner r(b.chart, b.datamodel());
  CHECK(r.config() == "light light.green ");
  r.step("TIMER");
  CHECK(r.config() == "light light.yellow ");
  r.step("+99");
  CHECK(r.config() == "light light.yellow ");
  r.step("+1");
  CHECK(r.config() == "light light.red ");
  r.step("TIMER");
  CHECK(r.config() == "light light.green ");
  CHECK(count == 1);
  CHECK(log == std::vector<std::string>{"back"});
  // The equivalent config is kept for inspection.
  CHECK(b.config.at("initial") == "green");
  CHECK(b.config.at("states").at("yellow").at("after").as_object().contains("100"));
}

TEST_CASE("builder: nested, final, onDone, output, entry/exit and wildcards match the JSON loader") {
  auto m = xsn::machine("light")
               .initial("green")
               .state("green", xsn::entry(xsn::action_ref("say", {{"m", "enter green"}})),
                      xsn::exit(xsn::action_ref("say", {{"m", "leave green"}})), xsn::on("TIMER", "yellow"),
                      xsn::after(100ms, "yellow"))
               .state("yellow", xsn::after(50ms, "red"), xsn::on("err.*", "green"))
               .state("red",
                      xsn::compound("walk")
                          .state("walk", xsn::on("PED", "wait"))
                          .state("wait", xsn::on("PED", "stop"), xsn::on("*", "walk"))
                          .state("stop", xsn::final_state({{"x", 1}})),
                      xsn::on_done("green").actions(xsn::action_ref("say", {{"m", "done"}})),
                      xsn::on("TIMER", "green").actions("inc"));
  const std::string json = R"({"id":"light","initial":"green","context":null,"states":{
    "green":{"entry":{"type":"say","params":{"m":"enter green"}},"exit":{"type":"say","params":{"m":"leave green"}},
             "on":{"TIMER":"yellow"},"after":{"100":"yellow"}},
    "yellow":{"after":{"50":"red"},"on":{"err.*":"green"}},
    "red":{"initial":"walk","states":{"walk":{"on":{"PED":"wait"}},"wait":{"on":{"PED":"stop","*":"walk"}},
           "stop":{"type":"final","output":{"x":1}}},
           "onDone":{"target":"green","actions":{"type":"say","params":{"m":"done"}}},
           "on":{"TIMER":{"target":"green","actions":"inc"}}}}})";
  // `inc` needs a context: both versions start from {"n": 0}.
  auto with_ctx = m;
  auto ctx_json = boost::json::parse(json);
  ctx_json.as_object()["context"] = {{"n", 0}};
  with_ctx.context({{"n", 0}});
  CHECK(same_traces(boost::json::serialize(ctx_json), with_ctx,
                    {"TIMER", "err.x", "+100", "+50", "PED", "OTHER", "PED", "PED", "+100", "+50", "TIMER", "NOPE"}) ==
        "light light.green ");
}

TEST_CASE("builder: parallel, history, always, reenter, ids, stateIn and named delays match the JSON loader") {
  auto b_state = xsn::compound("b1")
                     .entry(xsn::action_ref("say", {{"m", "enter b"}}))
                     .with(xsn::on("RE", ".b1").reenter().actions(xsn::action_ref("say", {{"m", "re"}})))
                     .state("b1", xsn::on("GO", "b2").guard(xsn::state_in("#p.run.a.a2")))
                     .state("b2", xsn::on("INC").actions("inc"),
                            xsn::always("b3").guard(xsn::guard_not(xsn::guard_ref("small", {{"below", 2}}))))
                     .state("b3", xsn::state().id("bdone"));
  auto m2 = xsn::machine("p")
                .context({{"n", 0}})
                .initial("run")
                .state("run",
                       xsn::parallel()
                           .state("a", xsn::compound("a1")
                                           .state("a1", xsn::on("NEXT", "a2"))
                                           .state("a2", xsn::on("NEXT", "a1"), xsn::after("later", "a1")))
                           .state("b", b_state)
                           .state("h", xsn::history(xsn::history_kind::deep)),
                       xsn::on("PAUSE", "paused"))
                .state("paused", xsn::on("RESUME", "run.h"), xsn::on("FRESH", "#p.run"), xsn::on("BACK", "#bdone"));
  const std::string json = R"({"id":"p","context":{"n":0},"initial":"run","states":{
    "run":{"type":"parallel","states":{
      "a":{"initial":"a1","states":{"a1":{"on":{"NEXT":"a2"}},"a2":{"on":{"NEXT":"a1"},"after":{"later":"a1"}}}},
      "b":{"initial":"b1","entry":{"type":"say","params":{"m":"enter b"}},
           "on":{"RE":{"target":".b1","reenter":true,"actions":{"type":"say","params":{"m":"re"}}}},
           "states":{"b1":{"on":{"GO":{"target":"b2","guard":{"type":"stateIn","state":"#p.run.a.a2"}}}},
                     "b2":{"on":{"INC":{"actions":"inc"}},
                           "always":{"target":"b3","guard":{"type":"not","guard":{"type":"small","params":{"below":2}}}}},
                     "b3":{"id":"bdone"}}},
      "h":{"type":"history","history":"deep"}},
      "on":{"PAUSE":"paused"}},
    "paused":{"on":{"RESUME":"run.h","FRESH":"#p.run","BACK":"#bdone"}}}})";
  CHECK(same_traces(json, m2, {"GO", "NEXT", "GO", "RE", "INC", "PAUSE", "RESUME", "+30", "NEXT", "GO", "INC", "INC", "PAUSE", "FRESH", "PAUSE", "BACK"}) ==
        "p p.run p.run.a p.run.a.a1 p.run.b bdone ");
}

TEST_CASE("builder: multiple targets, history default targets and machine output match the JSON loader") {
  auto m = xsn::machine("t")
               .initial("p")
               .output({{"ok", true}})
               .state("p",
                      xsn::parallel()
                          .state("a", xsn::compound("a1").state("a1").state("a2").state("h", xsn::history(xsn::history_kind::shallow, "a2")))
                          .state("b", xsn::compound("b1").state("b1").state("b2")),
                      xsn::on("JUMP", {"p.a.a2", "p.b.b2"}), xsn::on("OUT", "out"))
               .state("out", xsn::on("BACK", "p.a.h"), xsn::on("FINISH", "end"))
               .state("end", xsn::final_state());
  const std::string json = R"({"id":"t","initial":"p","output":{"ok":true},"states":{
    "p":{"type":"parallel","states":{
      "a":{"initial":"a1","states":{"a1":{},"a2":{},"h":{"type":"history","history":"shallow","target":"a2"}}},
      "b":{"initial":"b1","states":{"b1":{},"b2":{}}}},
      "on":{"JUMP":{"target":["p.a.a2","p.b.b2"]},"OUT":"out"}},
    "out":{"on":{"BACK":"p.a.h","FINISH":"end"}},
    "end":{"type":"final"}}})";
  same_traces(json, m, {"JUMP", "OUT", "BACK", "OUT", "FINISH"});  // ends done, in both
  CHECK(same_traces(json, m, {"JUMP", "OUT", "BACK"}) == "t t.p t.p.a t.p.a.a2 t.p.b t.p.b.b1 ");
}

TEST_CASE("builder: inline guards, combinators, inline delays and JSON context") {
  std::vector<std::string> log;
  auto m = xsn::machine("g")
               .context({{"n", 0}})
               .initial("idle")
               .state("idle",
                      xsn::on("TRY", "yes").guard(xsn::guard_and({[](const xsn::value& c) { return c.at("n").as_int64() >= 2; },
                                                                   xsn::guard_or({"never", [] { return true; }})})),
                      xsn::on("TRY").actions([](xsn::value& c) { c.as_object()["n"] = c.at("n").as_int64() + 1; }))
               .state("yes", xsn::after([](const xsn::value& c) { return std::chrono::seconds(c.at("n").as_int64()); }, "idle"));
  // Callables without a context: the event, the scope or a typed payload come first.
  std::vector<std::string> seen;
  m.with(xsn::on("SHOUT").actions([](xsn::action_scope& self) { self.raise(xsn::event("HEARD")); },
                                   [&seen](const xsn::event& ev) { seen.push_back(ev.name); }))
      .with(xsn::on("HEARD").actions([&seen](xsn::value& ctx, const xsn::event& ev) {
        seen.push_back(ev.name + std::to_string(ctx.at("n").as_int64()));
      }, xsn::action_ref("say", {{"m", "said"}})));
  xsn::implementations impl;
  impl.guard("never", [](const xsn::value&, const xsn::event&, const xsn::value&) { return false; });
  impl.action("say", [&seen](xsn::value&, const xsn::event&, const xsn::value& p) { seen.emplace_back(p.at("m").as_string()); });
  auto b = built(m.build(impl));
  runner r(b.chart, b.datamodel());
  r.step("TRY");
  r.step("TRY");
  CHECK(r.config() == "g g.idle ");
  r.step("TRY");
  CHECK(r.config() == "g g.yes ");
  CHECK(r.s->snapshot().at("context").at("n") == 2);
  r.step("+1999");
  CHECK(r.config() == "g g.yes ");
  r.step("+1");
  CHECK(r.config() == "g g.idle ");
  r.step("SHOUT");
  CHECK(seen == std::vector<std::string>{"SHOUT", "HEARD2", "said"});
}

TEST_CASE("builder: errors name the state path and never crash") {
  auto fails = [](const xsn::result<xsn::built_machine>& r, const std::string& part) {
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(r.error().message.find(part) != std::string::npos);
  };
  SECTION("unknown target") {
    fails(xsn::machine("m").initial("a").state("a", xsn::on("E", "nowhere")).build(),
          "unknown target 'nowhere' from state 'm.a'");
  }
  SECTION("duplicate id") {
    fails(xsn::machine("m").initial("a").state("a", xsn::state().id("x")).state("b", xsn::state().id("x")).build(),
          "duplicate state id 'x'");
  }
  SECTION("bad and missing initial") {
    fails(xsn::machine("m").initial("zz").state("a").build(), "initial state 'zz' is not a child of 'm'");
    fails(xsn::machine("m").state("a").build(), "compound state 'm' needs 'initial'");
    fails(xsn::machine("m").initial("a").state("a", xsn::compound("q").state("r")).build(),
          "initial state 'q' is not a child of 'm.a'");
  }
  SECTION("duplicate child key") {
    fails(xsn::machine("m").initial("a").state("a").state("a").build(), "state 'm': duplicate child state 'a'");
  }
  SECTION("an unbound name") {
    fails(xsn::machine("m").initial("a").state("a", xsn::entry("missing")).build(), "action 'missing' is not provided");
    fails(xsn::machine("m").initial("a").state("a", xsn::on("E").guard("nope")).build(), "guard 'nope' is not provided");
    fails(xsn::machine("m").initial("a").state("a", xsn::after("slow", "a")).build(), "delay 'slow' is not provided");
  }
  SECTION("an inline callable taking another context type") {
    fails(xsn::machine("m").initial("a").state("a", xsn::entry([](shop&) {})).build(),
          "state 'm.a': an inline action in entry takes a context of type `");
  }
  SECTION("misplaced settings") {
    fails(xsn::machine("m").initial("a").state("a", xsn::on("", "a")).build(), "state 'm.a': an `on` transition needs an event descriptor");
    fails(xsn::machine("m").id("other").initial("a").state("a").build(), "the machine's id is the one given");
    fails(xsn::machine("").initial("a").state("a").build(), "the machine id cannot be empty");
    fails(xsn::machine("m").initial("a").state("a", xsn::final_state(), xsn::on("E", "a")).build(), "a final state cannot have 'on'");
    fails(xsn::machine("m").initial("a").state("a", xsn::after(-5ms, "a")).build(), "a delay cannot be negative");
    fails(xsn::machine("m").initial("a").state("a", xsn::on("E", "a").guard(xsn::state_in("#ghost"))).build(),
          "stateIn: unknown state");
  }
  SECTION("every problem is reported, one per line") {
    auto r = xsn::machine("m").initial("a").state("a", xsn::on("E", "x")).state("b", xsn::on("E", "y")).build();
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("'x'") != std::string::npos);
    CHECK(r.error().message.find("'y'") != std::string::npos);
    CHECK(r.error().message.find('\n') != std::string::npos);
  }
}

TEST_CASE("builder: a typed context is held natively, read back typed, and snapshots round trip") {
  auto m = xsn::machine<shop>("shop", shop{0, 0, "none"})
               .initial("open")
               .state("open",
                      xsn::on<order_placed>()
                          .guard([](const shop&, const order_placed& o) { return o.amount > 0; })
                          .actions([](shop& s, const order_placed& o) {
                            ++s.orders;
                            s.total += o.amount;
                            s.last = "order " + std::to_string(o.id);
                          }),
                      xsn::on("CLOSE", "closing"))
               .state("closing", xsn::after("grace", "closed"), xsn::entry("note"))
               .state("closed", xsn::final_state());
  xsn::typed_implementations<shop> impl;
  impl.action("note", [](shop& s, const xsn::event& ev) { s.last = ev.name; });
  impl.delay("grace", [](const shop& s) { return std::chrono::milliseconds(100 * s.orders); });
  auto b = built(m.build(impl));
  runner r(b.chart, b.datamodel());
  REQUIRE(xsn::context_of<shop>(*r.s) != nullptr);
  CHECK(xsn::context_of<int>(*r.s) == nullptr);
  CHECK(xsn::xstate_context(r.s->datamodel()) == nullptr);
  REQUIRE_FALSE(xsn::send(*r.s, order_placed{7, 12.5}));
  REQUIRE_FALSE(xsn::send(*r.s, order_placed{8, -1}));  // refused by the guard
  REQUIRE_FALSE(xsn::send(*r.s, order_placed{9, 0.5}));
  r.settle();
  const shop* s = xsn::context_of<shop>(*r.s);
  CHECK(s->orders == 2);
  CHECK(s->total == 13.0);
  CHECK(s->last == "order 9");
  r.step("CLOSE");
  CHECK(s->last == "CLOSE");
  r.step("+50");

  // Snapshot with a pending timer (150 ms left of 200), restore into a new session, carry on.
  auto snap = r.s->snapshot();
  CHECK(snap.at("context") == boost::json::parse(R"({"orders":2,"total":13.0,"last":"CLOSE"})"));
  runner r2(b.chart, b.datamodel(), false);
  REQUIRE_FALSE(r2.s->restore(snap));
  r2.settle();
  CHECK(xsn::context_of<shop>(*r2.s)->orders == 2);
  CHECK(r2.config() == r.config());
  r.step("+149");
  r2.step("+149");
  CHECK(r2.config() == "shop shop.closing ");
  r.step("+1");
  r2.step("+1");
  CHECK(r.config() == "shop shop.closed ");
  CHECK(r2.config() == r.config());
  CHECK(r2.status() == "done");

  // A context that does not convert back is refused, changing nothing.
  runner r3(b.chart, b.datamodel(), false);
  auto bad = snap;
  bad.as_object()["context"] = {{"orders", "many"}};
  CHECK(r3.s->restore(bad) == xsn::errc::bad_snapshot);
  CHECK_FALSE(r3.s->running());
}

TEST_CASE("builder: typed events carry payloads; malformed payloads put the session in error, not crash") {
  auto m = xsn::machine<shop>("shop")
               .initial("open")
               .state("open", xsn::on<order_placed>().actions([](shop& s, const order_placed& o) { s.total += o.amount; }));
  auto b = built(m.build());
  SECTION("payload and make_event") {
    auto ev = xsn::make_event(order_placed{3, 4.5});
    CHECK(ev.name == "ORDER.PLACED");
    CHECK(xsn::payload<order_placed>(ev).id == 3);
    CHECK_THROWS_AS(xsn::payload<order_placed>(xsn::event("OTHER", ev.data)), std::invalid_argument);
    CHECK_THROWS(xsn::payload<order_placed>(xsn::event("ORDER.PLACED", "junk")));
  }
  SECTION("a well-formed event") {
    runner r(b.chart, b.datamodel());
    REQUIRE_FALSE(r.s->send(xsn::make_event(order_placed{1, 2.0})));
    r.settle();
    CHECK(xsn::context_of<shop>(*r.s)->total == 2.0);
    CHECK(r.status() == "active");
  }
  SECTION("the same name with data that is not an order") {
    runner r(b.chart, b.datamodel());
    REQUIRE_FALSE(r.s->send(xsn::event("ORDER.PLACED", "junk")));
    r.settle();
    CHECK(r.status() == "error");
    CHECK(xsn::context_of<shop>(*r.s)->total == 0.0);
  }
}

TEST_CASE("builder: typed implementations bind to a chart parsed from JSON") {
  auto parsed = xsn::parse_xstate(R"({"id":"c","initial":"a","states":{"a":{"on":{"ORDER.PLACED":{"target":"b","guard":"big","actions":"add"}}},"b":{}}})",
                                  "c.json");
  REQUIRE(parsed);
  xsn::typed_implementations<shop> impl;
  impl.action("add", [](shop& s, const order_placed& o) { s.total += o.amount; });
  impl.guard("big", [](const shop&, const order_placed& o) { return o.amount >= 10; });
  auto bound = xsn::bind(*parsed.chart, impl, shop{});
  REQUIRE(bound);
  runner r(parsed.chart, xsn::xstate_datamodel(*bound));
  REQUIRE_FALSE(xsn::send(*r.s, order_placed{1, 5}));
  r.settle();
  CHECK(r.config() == "c c.a ");
  REQUIRE_FALSE(xsn::send(*r.s, order_placed{2, 10}));
  r.settle();
  CHECK(r.config() == "c c.b ");
  CHECK(xsn::context_of<shop>(*r.s)->total == 10.0);

  // Missing names and a wrongly typed callable are refused at bind time.
  xsn::typed_implementations<shop> partial;
  partial.action("add", [](shop&) {});
  auto missing = xsn::bind(*parsed.chart, partial, shop{});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "guard 'big' is not provided");
  partial.guard("big", [](const int&) { return true; });
  auto wrong = xsn::bind(*parsed.chart, partial, shop{});
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().message.find("guard 'big' takes a context of type `int`") != std::string::npos);
}
