// A user of an installed xsn: parse a small SCXML document, run it, check where it ends.
// Exercises the include paths, xsn/config.hpp, and linking the static xsn_core together with its
// dependencies (Boost.JSON, pugixml, the Duktape objects when the ECMAScript datamodel is built).
#include <xsn/xsn.hpp>

#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view null_chart = R"(<?xml version="1.0"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" initial="idle" datamodel="null">
  <state id="idle">
    <transition event="start" target="running"/>
  </state>
  <state id="running">
    <onentry><raise event="finish"/></onentry>
    <transition event="finish" target="done"/>
  </state>
  <final id="done"/>
</scxml>)";

#if XSN_WITH_ECMASCRIPT
constexpr std::string_view ecmascript_chart = R"(<?xml version="1.0"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" initial="counting" datamodel="ecmascript">
  <datamodel><data id="n" expr="0"/></datamodel>
  <state id="counting">
    <transition event="tick" cond="n &lt; 2"><assign location="n" expr="n + 1"/></transition>
    <transition event="tick" target="done"/>
  </state>
  <final id="done"/>
</scxml>)";
#endif

int failures = 0;

void expect(bool ok, std::string_view what) {
  if (!ok) {
    std::cerr << "FAILED: " << what << '\n';
    ++failures;
  }
}

/// Parses `text`, sends `events` one by one, and checks the session ends in final state `done`.
void run(std::string_view name, std::string_view text, const std::vector<std::string>& events) {
  xsn::parse_result parsed = xsn::parse_scxml(text, name);
  for (const auto& d : parsed.errors) std::cerr << d.to_string() << '\n';
  expect(static_cast<bool>(parsed), "parse");
  if (!parsed) return;

  boost::asio::io_context io;
  xsn::manual_clock clk;
  xsn::session s(parsed.chart, io.get_executor(), clk);
  s.start();
  expect(s.running(), "running after start");
  for (const auto& e : events) {
    const std::error_code ec = s.process(xsn::event(e));
    expect(!ec, "process " + e + ": " + ec.message());
  }
  expect(!s.running(), "reached the top-level final state");
  const std::vector<std::string> atomic = s.active_atomic_states();
  std::cout << name << ":";
  for (const auto& id : atomic) std::cout << ' ' << id;
  std::cout << '\n';
}

}  // namespace

int main() {
  std::cout << "xsn " << XSN_VERSION_STRING << '\n';
  run("null.scxml", null_chart, {"start"});
#if XSN_WITH_ECMASCRIPT
  run("ecmascript.scxml", ecmascript_chart, {"tick", "tick", "tick"});
#endif
  return failures == 0 ? 0 : 1;
}
