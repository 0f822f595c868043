// The interpreter's precomputed fast paths keep XState's rules: transition selection bottom-up from
// the atomic states (parallel states asked only when no region enabled a transition), and the event
// the xstate datamodel reads by reference (external, internal, and in eventless guards).
#include <xsn/runtime/session.hpp>

#include "catch.hpp"
#include "session_driver.hpp"

#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>

#include <boost/json/serialize.hpp>

#include <memory>
#include <string>
#include <vector>

namespace {

/// An XState machine driven synchronously through `session::process`, logging what actions see.
struct fast_machine : xsn_test::session_driver {
  std::vector<std::string> log;

  explicit fast_machine(const std::string& json) : session_driver(xsn_test::xstate_chart(json, "fast.json")) {
    xsn::implementations impl;
    impl.action("record", [this](xsn::value&, const xsn::event& ev, const xsn::value&) {
      log.push_back(ev.name + " " + boost::json::serialize(ev.data));
    });
    impl.action("raise_go", xsn::action_fn([](xsn::value&, const xsn::event&, const xsn::value&, xsn::action_scope& self) {
      self.raise(xsn::event("go", xsn::value(7)));
    }));
    impl.guard("after_go", [this](const xsn::value&, const xsn::event& ev, const xsn::value&) {
      log.push_back("guard " + ev.name);
      return ev.name == "go";
    });
    open(xsn::xstate_datamodel(xsn_test::bound(*chart, impl)), false);
    s->start();  // not settled: the tests call `process` synchronously
  }
  void process(const std::string& name, xsn::value data = nullptr) { REQUIRE_FALSE(s->process(xsn::event(name, std::move(data)))); }
  bool active(const char* id) const { return s->is_active(chart->find_state(id)); }
};

}  // namespace

TEST_CASE("session: XState asks a parallel state only when none of its regions enabled a transition") {
  fast_machine m(R"({"id": "m", "initial": "p", "states": {
    "p": {"type": "parallel", "on": {"e": "x"}, "states": {
      "a": {"initial": "a1", "states": {"a1": {"on": {"e": "a2"}}, "a2": {}}},
      "b": {"initial": "b1", "states": {"b1": {}}}}},
    "x": {}}})");
  m.process("e");  // region a takes it: p's own transition is not asked
  CHECK(m.active("m.p.a.a2"));
  CHECK(m.active("m.p.b.b1"));
  m.process("e");  // no region takes it now: p's transition does
  CHECK(m.active("m.x"));
  CHECK_FALSE(m.active("m.p"));
}

TEST_CASE("session: XState nested parallel regions combine before their ancestors are asked") {
  fast_machine m(R"({"id": "m", "initial": "p", "states": {
    "p": {"type": "parallel", "on": {"e": "x"}, "states": {
      "a": {"type": "parallel", "on": {"e": "#m.y"}, "states": {
        "a1": {"initial": "i", "states": {"i": {}}},
        "a2": {"initial": "i", "states": {"i": {"on": {"f": "j"}}, "j": {}}}}},
      "b": {"initial": "b1", "states": {"b1": {"on": {"f": "b2"}}, "b2": {}}}}},
    "x": {}, "y": {}}})");
  m.process("f");  // both a.a2 and b take `f`, in one microstep
  CHECK(m.active("m.p.a.a2.j"));
  CHECK(m.active("m.p.b.b2"));
  m.process("e");  // no atomic state takes `e`: the inner parallel `a` is asked before `p`
  CHECK(m.active("m.y"));
  CHECK_FALSE(m.active("m.x"));
}

TEST_CASE("session: XState actions and eventless guards see the event of their own step") {
  fast_machine m(R"({"id": "m", "initial": "idle", "states": {
    "idle": {"on": {"start": {"target": "busy", "actions": ["record", "raise_go"]}}},
    "busy": {"entry": ["record"], "on": {"go": {"target": "wait", "actions": ["record"]}}},
    "wait": {"always": {"guard": "after_go", "target": "done"}},
    "done": {"entry": ["record"]}}})");
  m.process("start", xsn::value(1));
  CHECK(m.active("m.done"));
  const std::vector<std::string> expected{"start 1", "start 1", "go 7", "guard go", "go 7"};
  CHECK(m.log == expected);
  m.process("start", xsn::value(2));  // ignored in `done`: nothing runs, nothing dangles
  CHECK(m.log == expected);
}
