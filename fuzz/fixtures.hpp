#pragma once
// The fixed machines the fuzz targets feed inputs to: loaded once, shared by every run.
#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>

#include <cstdlib>
#include <cstdio>
#include <memory>
#include <string_view>

namespace xsn_fuzz {

/// ECMAScript SCXML: data, a parallel state with a deep history, a delayed send, an inline
/// invoked child: what a snapshot or a test script can reach.
inline constexpr std::string_view scxml_machine = R"(<scxml xmlns="http://www.w3.org/2005/07/scxml"
    version="1.0" datamodel="ecmascript" initial="idle">
  <datamodel><data id="count" expr="0"/><data id="items" expr="[1, {a: 'b'}]"/></datamodel>
  <state id="idle">
    <transition event="go" target="work"/>
    <transition event="data" cond="_event.data &amp;&amp; _event.data.n > 2" target="done"/>
  </state>
  <parallel id="work">
    <history id="h" type="deep"><transition target="left"/></history>
    <state id="left" initial="l1">
      <state id="l1"><transition event="next" target="l2"/></state>
      <state id="l2">
        <onentry><send event="tick" delay="1s" id="t"/><assign location="count" expr="count + 1"/></onentry>
        <transition event="tick" target="l1"/>
      </state>
    </state>
    <state id="right">
      <invoke id="child" type="scxml"><content>
        <scxml version="1.0" datamodel="ecmascript"><state id="c1"><transition event="stop" target="cf"/></state><final id="cf"/></scxml>
      </content></invoke>
      <transition event="leave" target="idle"/>
    </state>
  </parallel>
  <final id="done"/>
</scxml>)";

/// An XState machine with delays, guards-free transitions and nesting.
inline constexpr std::string_view xstate_machine = R"({
  "id": "light", "initial": "green",
  "context": {"n": 0},
  "states": {
    "green": {"after": {"1000": "yellow"}, "on": {"EMERGENCY": "red"}},
    "yellow": {"after": {"300": "red", "500": "green"}},
    "red": {"initial": "walk", "after": {"2000": "green"}, "on": {"BUTTON": "red", "DONE": "off"},
            "states": {"walk": {"after": {"700": "wait"}}, "wait": {"after": {"200": "stop"}}, "stop": {}}},
    "off": {"type": "final"}
  }
})";

/// The chart of `text` (SCXML or XState), loaded once; aborts when it does not load.
inline std::shared_ptr<const xsn::statechart> load(std::string_view text, bool xstate) {
  auto r = xstate ? xsn::parse_xstate(text, "fixture.json") : xsn::parse_scxml(text, "fixture.scxml");
  if (!r) {
    for (const auto& d : r.errors) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    std::abort();
  }
  return r.chart;
}

}  // namespace xsn_fuzz
