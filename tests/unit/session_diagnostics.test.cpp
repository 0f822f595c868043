#include <xsn/runtime/diagnostics.hpp>

#include "catch.hpp"
#include "orchestrator_fixture.hpp"
#include "session_driver.hpp"

#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/inspection.hpp>
#include <xsn/core/logging.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/json/serialize.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

// Errors are never silent: what goes wrong in a session (errors raised, guards that fail,
// unbound actions) and events no transition took reach `on_diagnostic`, else the `xsn.session`
// log, and the inspection stream; binding and starting name every missing implementation.

namespace {

std::shared_ptr<const xsn::statechart> scxml(const std::string& body, const std::string& attrs = " datamodel=\"ecmascript\"") {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" xmlns:xsn=\"http://xsn.dev/scxml\" version=\"1.0\"" +
                                attrs + ">" + body + "</scxml>",
                            "diag.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

/// A diagnostic with its views copied.
struct seen {
  xsn::diagnostic_kind kind;
  std::string session_id, event, state, message;
  xsn::ignore_reason reason;
  std::string root;  // the id of the session the hook was given
};

/// A session of `chart` whose diagnostics are recorded.
struct recorded : xsn_test::session_driver {
  std::vector<seen> got;
  explicit recorded(std::shared_ptr<const xsn::statechart> c, xsn::datamodel_factory dm = {},
                    std::function<void(xsn::session_options&)> more = {})
      : session_driver(std::move(c)) {
    options = [this, more = std::move(more)](xsn::session_options& o) {
      o.on_diagnostic = [this](xsn::session& root, const xsn::runtime_diagnostic& d) {
        got.push_back({d.kind, std::string(d.session_id), std::string(d.event), std::string(d.state),
                       std::string(d.message), d.reason, root.id()});
      };
      if (more) more(o);
    };
    open(std::move(dm));
  }
  /// The diagnostics of `kind`.
  std::vector<seen> of(xsn::diagnostic_kind kind) const {
    std::vector<seen> out;
    for (const auto& d : got)
      if (d.kind == kind) out.push_back(d);
    return out;
  }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// Records every xsn log record (logger, level, text); restores the registry afterwards.
struct log_capture {
  struct line {
    std::string logger;
    xsn::logging::level severity;
    std::string text;
  };
  std::shared_ptr<std::vector<line>> lines = std::make_shared<std::vector<line>>();
  explicit log_capture(xsn::logging::level lvl) {
    xsn::logging::configure(lvl, [lines = lines](const xsn::logging::record& r) {
      lines->push_back({std::string(r.logger), r.severity, std::string(r.text)});
    });
  }
  ~log_capture() { xsn::logging::reset(); }
  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;
};

const char* bad_cond_doc = R"(<state id="idle"><transition event="go" cond="x ==" target="busy"/></state><state id="busy"/>)";

}  // namespace

TEST_CASE("session diagnostics: an ECMAScript cond with a syntax error reaches the hook with its state and message") {
  recorded r(scxml(bad_cond_doc));
  r.send("go");
  CHECK(r.states() == std::vector<std::string>{"idle"});
  auto guards = r.of(xsn::diagnostic_kind::guard_error);
  REQUIRE(guards.size() == 1);
  CHECK(guards[0].event == "error.execution");
  CHECK(guards[0].state == "idle");
  CHECK(guards[0].session_id == r.s->id());
  CHECK(guards[0].root == r.s->id());
  INFO(guards[0].message);
  CHECK(contains(guards[0].message, "SyntaxError"));
  // The external event then went untaken, and says why.
  auto ignored = r.of(xsn::diagnostic_kind::event_ignored);
  REQUIRE(ignored.size() == 1);
  CHECK(ignored[0].event == "go");
  CHECK(ignored[0].reason == xsn::ignore_reason::guard_failed);
}

TEST_CASE("session diagnostics: an unbound native action is reported when the session starts and each time it runs") {
  recorded r(scxml(R"(<state id="a"><transition event="go" target="b"/></state>
      <state id="b"><onentry><xsn:action name="start_motor"/><xsn:action name="beep"/></onentry></state>)"),
             {}, [](xsn::session_options& o) { o.actions["beep"] = [](xsn::session&) {}; });
  auto unbound = r.of(xsn::diagnostic_kind::unbound_action);
  REQUIRE(unbound.size() == 1);  // at start: every unbound name, before any runs
  CHECK(contains(unbound[0].message, "'start_motor'"));
  CHECK_FALSE(contains(unbound[0].message, "'beep'"));
  r.send("go");
  unbound = r.of(xsn::diagnostic_kind::unbound_action);
  REQUIRE(unbound.size() == 2);
  CHECK(unbound[1].event == "error.execution");
  CHECK(unbound[1].state == "b");
  CHECK(contains(unbound[1].message, "no native action bound to 'start_motor'"));
}

TEST_CASE("session diagnostics: every error.execution and error.communication raised reaches the hook") {
  // Each `<onentry>` is a block of its own: an error ends only its block.
  recorded r(scxml(R"(<state id="a"><onentry><assign location="nope.deep" expr="1"/></onentry>
      <onentry><if cond="true"><log expr="undefined_var"/></if></onentry>
      <onentry><send target="#_scxml_nobody" event="x"/></onentry></state>)"));
  auto errors = r.of(xsn::diagnostic_kind::execution_error);
  REQUIRE(errors.size() == 2);
  for (const auto& e : errors) {
    CHECK(e.event == "error.execution");
    CHECK(e.state == "a");  // the `<log>` nested in `<if>` too
  }
  auto comm = r.of(xsn::diagnostic_kind::communication_error);
  REQUIRE(comm.size() == 1);
  CHECK(comm[0].event == "error.communication");
  CHECK(contains(comm[0].message, "#_scxml_nobody"));
}

TEST_CASE("session diagnostics: an XState guard that throws fails the machine and reaches the hook") {
  xsn::implementations impl;
  impl.guard("ready", [](const xsn::value&, const xsn::event&, const xsn::value&) -> bool { throw std::runtime_error("sensor offline"); });
  auto chart = xsn_test::xstate_chart(R"({"id":"m","initial":"idle","states":{"idle":{"on":{"go":{"target":"busy","guard":"ready"}}},"busy":{}}})");
  recorded r(chart, xsn::xstate_datamodel(xsn_test::bound(*chart, impl)));
  r.send("go");
  CHECK(r.status() == "error");
  auto guards = r.of(xsn::diagnostic_kind::guard_error);
  REQUIRE(guards.size() == 1);
  CHECK(guards[0].state == "m.idle");
  CHECK(contains(guards[0].message, "sensor offline"));
  CHECK(r.of(xsn::diagnostic_kind::event_ignored).empty());  // the failure is the news, not the event
}

TEST_CASE("session diagnostics: an ignored event says whether no transition had it or every guard was false") {
  recorded r(scxml(R"(<datamodel><data id="open" expr="false"/></datamodel>
      <state id="idle"><transition event="go" cond="open" target="busy"/></state><state id="busy"/>)"));
  r.send("nothing.here");
  r.send("go");
  auto ignored = r.of(xsn::diagnostic_kind::event_ignored);
  REQUIRE(ignored.size() == 2);
  CHECK(ignored[0].event == "nothing.here");
  CHECK(ignored[0].reason == xsn::ignore_reason::no_transition);
  CHECK(ignored[1].event == "go");
  CHECK(ignored[1].reason == xsn::ignore_reason::guards_false);
  CHECK(r.got.size() == 2);  // nothing else
}

TEST_CASE("session diagnostics: without a hook they are logged by xsn.session at warn and ignored events at debug") {
  SECTION("warn") {
    log_capture cap(xsn::logging::level::warn);
    xsn_test::session_driver r(scxml(bad_cond_doc), {});
    r.send("go");
    REQUIRE(cap.lines->size() == 1);  // the ignored event is below warn
    const auto& l = cap.lines->front();
    CHECK(l.logger == "xsn.session");
    CHECK(l.severity == xsn::logging::level::warn);
    INFO(l.text);
    CHECK(l.text.rfind("guard_error session=", 0) == 0);
    CHECK(contains(l.text, " event=error.execution state=idle message="));
  }
  SECTION("debug") {
    log_capture cap(xsn::logging::level::debug);
    xsn_test::session_driver r(scxml(bad_cond_doc), {});
    r.send("go");
    REQUIRE(cap.lines->size() == 2);
    const auto& l = cap.lines->back();
    CHECK(l.severity == xsn::logging::level::debug);
    INFO(l.text);
    CHECK(l.text.rfind("event_ignored session=", 0) == 0);
    CHECK(contains(l.text, " event=go reason=guard_failed "));
  }
}

TEST_CASE("session diagnostics: they are on the inspection stream as @xsn.diagnostic") {
  std::vector<std::string> json;
  recorded r(scxml(bad_cond_doc), {}, [&json](xsn::session_options& o) {
    o.inspect = [&json](const xsn::inspection_event& e) {
      if (e.kind == xsn::inspection_kind::diagnostic) json.push_back(boost::json::serialize(xsn::to_json(e)));
    };
  });
  r.send("go");
  REQUIRE(json.size() == 2);
  INFO(json[0]);
  CHECK(contains(json[0], R"("type":"@xsn.diagnostic")"));
  CHECK(contains(json[0], R"("diagnostic":{"kind":"guard_error","event":"error.execution","state":"idle","message":)"));
  CHECK(contains(json[1], R"("diagnostic":{"kind":"event_ignored","event":"go","reason":"guard_failed","message":)"));
}

TEST_CASE("session diagnostics: invoked children inherit the hook, which gets the root session") {
  recorded r(scxml(R"(<state id="s"><invoke id="kid"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript">
        <state id="k"><onentry><log expr="no_such_thing"/></onentry></state></scxml></content></invoke></state>)"));
  auto errors = r.of(xsn::diagnostic_kind::execution_error);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].state == "k");
  CHECK(errors[0].session_id != r.s->id());
  CHECK(errors[0].root == r.s->id());
}

TEST_CASE("session diagnostics: the orchestrator hands each machine's diagnostics to its hook with the machine id") {
  std::vector<std::pair<std::string, seen>> got;
  xsn::orchestrator_options oo;
  oo.on_diagnostic = [&got](const std::string& machine, const xsn::runtime_diagnostic& d) {
    got.push_back({machine, {d.kind, std::string(d.session_id), std::string(d.event), std::string(d.state),
                             std::string(d.message), d.reason, {}}});
  };
  xsn_test::fixture fx([](xsn::orchestrator& o) { REQUIRE(o.add_document("bad", scxml(bad_cond_doc))); }, oo);
  REQUIRE_FALSE(fx.create("m1", "bad"));
  REQUIRE_FALSE(fx.send("m1", "go"));
  REQUIRE(got.size() == 2);
  CHECK(got[0].first == "m1");
  CHECK(got[0].second.kind == xsn::diagnostic_kind::guard_error);
  CHECK(got[0].second.state == "idle");
  CHECK(got[1].first == "m1");
  CHECK(got[1].second.kind == xsn::diagnostic_kind::event_ignored);
}

TEST_CASE("session diagnostics: without its hook the orchestrator logs them as xsn.orchestrator at warn") {
  log_capture cap(xsn::logging::level::warn);
  xsn_test::fixture fx([](xsn::orchestrator& o) { REQUIRE(o.add_document("bad", scxml(bad_cond_doc))); });
  REQUIRE_FALSE(fx.create("m1", "bad"));
  REQUIRE_FALSE(fx.send("m1", "go"));
  std::vector<std::string> diag;
  for (const auto& l : *cap.lines)
    if (l.text.rfind("guard_error", 0) == 0) diag.push_back(l.logger + " " + l.text);
  REQUIRE(diag.size() == 1);
  INFO(diag[0]);
  CHECK(diag[0].rfind("xsn.orchestrator guard_error machine=m1 session=m1 event=error.execution state=idle", 0) == 0);
}

TEST_CASE("session diagnostics: bind names every missing implementation at once") {
  auto chart = xsn_test::xstate_chart(R"({"id":"m","initial":"a","states":{"a":{"entry":["start_motor","beep"],
      "on":{"go":{"target":"b","guard":"ready"}},"after":{"soon":"b"},"invoke":{"src":"fetcher"}},"b":{}}})");
  xsn::implementations impl;
  impl.action("beep", [](xsn::value&, const xsn::event&, const xsn::value&) {});
  auto r = xsn::bind(*chart, impl);
  REQUIRE_FALSE(r);
  const auto& m = r.error().message;
  INFO(m);
  CHECK(m.rfind("4 implementations are missing or do not fit: ", 0) == 0);
  for (const char* part : {"action 'start_motor' is not provided", "guard 'ready' is not provided",
                           "delay 'soon' is not provided", "actor 'fetcher' is not provided"})
    CHECK(contains(m, part));
  CHECK_FALSE(contains(m, "beep"));
}

TEST_CASE("session diagnostics: starting an XState machine with nothing bound fails with the list") {
  auto chart = xsn_test::xstate_chart(R"({"id":"m","initial":"a","states":{"a":{"entry":["start_motor"],
      "on":{"go":{"target":"b","guard":"ready"}}},"b":{"entry":["beep"]}}})");
  recorded r(chart);  // started through the driver, which does not look at the result
  CHECK(r.status() == "error");
  CHECK_FALSE(r.s->running());
  xsn_test::session_driver fresh(chart, {}, false);
  auto ec = fresh.s->start();
  CHECK(ec == xsn::errc::not_bound);
  const std::string why(fresh.s->error().as_string());
  INFO(why);
  for (const char* part : {"action 'start_motor' is not provided", "action 'beep' is not provided", "guard 'ready' is not provided"})
    CHECK(contains(why, part));
  auto unbound = r.of(xsn::diagnostic_kind::unbound_action);
  REQUIRE(unbound.size() == 1);
  CHECK(contains(unbound[0].message, "3 implementations are missing or do not fit"));
  CHECK(r.got.size() == 1);
}

TEST_CASE("session diagnostics: an XState machine failing while it starts fails start with start_failed") {
  xsn::implementations impl;
  impl.action("start_motor", [](xsn::value&, const xsn::event&, const xsn::value&) { throw std::runtime_error("motor jammed"); });
  auto chart = xsn_test::xstate_chart(R"({"id":"m","initial":"a","states":{"a":{"entry":["start_motor"]}}})");
  xsn_test::session_driver d(chart, xsn::xstate_datamodel(xsn_test::bound(*chart, impl)), false);
  std::vector<std::string> messages;
  xsn::session_options o;
  o.make_datamodel = d.datamodel;
  o.on_diagnostic = [&messages](xsn::session&, const xsn::runtime_diagnostic& diag) {
    messages.push_back(std::string(xsn::to_string(diag.kind)) + " " + std::string(diag.state) + " " + std::string(diag.message));
  };
  auto s = d.drv.make_session(chart, std::move(o));
  CHECK(s->start() == xsn::errc::start_failed);
  CHECK(s->status() == xsn::session_status::error);
  REQUIRE(messages.size() == 1);
  INFO(messages[0]);
  CHECK(messages[0].rfind("execution_error m.a ", 0) == 0);
  CHECK(contains(messages[0], "motor jammed"));
  CHECK_FALSE(s->start());  // started already: nothing to do
}
