// The event index (statechart::event_index): states with more than `index_threshold` transitions
// look up the few an event can match instead of scanning them all. Selection through the index must
// be the scan's: token-prefix descriptors, `*`, `foo.*`, several descriptors in one `event`,
// document order across exact and prefix matches, eventless transitions, internal events, and
// XState's rules. Each case runs the same machine with and without filler transitions (indexed and
// scanned) and expects the same states.
#include <xsn/model/statechart.hpp>

#include "catch.hpp"
#include "names.hpp"
#include "session_driver.hpp"

#include <xsn/parse/scxml.hpp>

#include <memory>
#include <string>
#include <vector>

namespace {

/// Transitions on events nobody sends, enough to make the state holding them indexed.
std::string scxml_fillers() {
  std::string s;
  for (std::uint32_t i = 0; i <= xsn::statechart::index_threshold; ++i)
    s.append("<transition event=\"").append(xsn_test::named("filler", i)).append("\" target=\"filled\"/>");
  return s;
}

/// A chart whose initial state `s` holds `transitions` (after fillers when `indexed`), beside the
/// targets a .. e; `extra` goes into `s` before them (onentry).
std::shared_ptr<const xsn::statechart> scxml_chart(const std::string& transitions, bool indexed, const std::string& extra = "") {
  std::string doc = "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\" datamodel=\"null\" initial=\"s\">"
                    "<state id=\"s\">" + extra + (indexed ? scxml_fillers() : std::string()) + transitions + "</state>";
  for (const char* id : {"a", "b", "c", "d", "e", "filled"}) doc += std::string("<state id=\"") + id + "\"/>";
  doc += "</scxml>";
  auto r = xsn::parse_scxml(doc, "index.scxml");
  INFO((r.errors.empty() ? std::string() : r.errors.front().to_string()));
  REQUIRE(r);
  return r.chart;
}

/// The active atomic states after starting a session of `chart` and sending `events`.
std::string after(std::shared_ptr<const xsn::statechart> chart, const std::vector<std::string>& events) {
  xsn_test::session_driver d(std::move(chart), {});
  for (const auto& e : events) d.send(e);
  std::string out;
  for (const auto& id : d.states()) out += (out.empty() ? "" : " ") + id;
  return out;
}

/// What `event` leads to from `s` with `transitions`, checked to be the same indexed and scanned.
std::string scxml_taken(const std::string& transitions, const std::string& event, const std::string& extra = "") {
  const auto indexed = scxml_chart(transitions, true, extra);
  REQUIRE((indexed->hot_states[indexed->find_state("s")].flags & xsn::hot_state::indexed));
  const auto scanned = scxml_chart(transitions, false, extra);
  REQUIRE_FALSE((scanned->hot_states[scanned->find_state("s")].flags & xsn::hot_state::indexed));
  const auto events = event.empty() ? std::vector<std::string>{} : std::vector<std::string>{event};
  const auto result = after(indexed, events);
  CHECK(result == after(scanned, events));
  return result;
}

}  // namespace

TEST_CASE("event index: only states with many transitions are indexed, by descriptor in document order") {
  const auto c = scxml_chart(R"x(<transition event="go" target="a"/><transition event="*" target="b"/>)x"
                             R"x(<transition target="c" cond="In('e')"/><transition event="go stop" target="d"/>)x", true);
  const auto s = c->find_state("s");
  CHECK((c->hot_states[s].flags & xsn::hot_state::indexed));
  CHECK((c->hot_states[s].flags & xsn::hot_state::any_event));
  CHECK_FALSE((c->hot_states[c->find_state("a")].flags & xsn::hot_state::indexed));
  const auto targets = [&](std::uint32_t key) {
    std::string out;
    for (auto [it, end] = c->indexed(s, key); it != end; ++it) out += c->states[c->transitions[it->transition].targets[0]].id;
    return out;
  };
  CHECK(targets(c->find_name("go")) == "ad");
  CHECK(targets(c->find_name("stop")) == "d");
  CHECK(targets(c->any_key()) == "b");
  CHECK(targets(c->eventless_key()) == "c");
  CHECK(targets(c->find_name("filler0")) == "filled");
  CHECK(c->indexed(c->find_state("a"), c->find_name("go")).first == c->indexed(c->find_state("a"), c->find_name("go")).second);
}

TEST_CASE("event index: descriptors match whole tokens by prefix") {
  const std::string t = R"x(<transition event="errors" target="a"/><transition event="error" target="b"/>)x";
  CHECK(scxml_taken(t, "error") == "b");
  CHECK(scxml_taken(t, "error.execution") == "b");
  CHECK(scxml_taken(t, "error.execution.deeper") == "b");  // a name no descriptor names
  CHECK(scxml_taken(t, "errors") == "a");
  CHECK(scxml_taken(t, "errorsx") == "s");
  CHECK(scxml_taken(t, "err") == "s");
}

TEST_CASE("event index: the wildcard suffix .* matches the prefix and its extensions") {
  const std::string t = R"x(<transition event="error.*" target="a"/><transition event="*" target="b"/>)x";
  CHECK(scxml_taken(t, "error") == "a");
  CHECK(scxml_taken(t, "error.x") == "a");
  CHECK(scxml_taken(t, "errorx") == "b");
}

TEST_CASE("event index: star matches every event in document order with the others") {
  CHECK(scxml_taken(R"x(<transition event="foo" target="a"/><transition event="*" target="b"/>)x", "foo") == "a");
  CHECK(scxml_taken(R"x(<transition event="foo" target="a"/><transition event="*" target="b"/>)x", "bar") == "b");
  CHECK(scxml_taken(R"x(<transition event="*" target="b"/><transition event="foo" target="a"/>)x", "foo") == "b");
  CHECK(scxml_taken(R"x(<transition event="foo *" target="c"/><transition event="bar" target="a"/>)x", "bar") == "c");
}

TEST_CASE("event index: several descriptors in one event attribute") {
  const std::string t = R"x(<transition event="a b.c" target="c"/><transition event="b" target="d"/>)x";
  CHECK(scxml_taken(t, "a") == "c");
  CHECK(scxml_taken(t, "a.x") == "c");
  CHECK(scxml_taken(t, "b.c.d") == "c");
  CHECK(scxml_taken(t, "b.x") == "d");
  CHECK(scxml_taken(t, "b") == "d");
  // The same transition under two keys an event matches is still one candidate, in its place.
  CHECK(scxml_taken(R"x(<transition event="x x.y" target="a" cond="In('e')"/><transition event="x.y" target="b"/>)x", "x.y.z") == "b");
}

TEST_CASE("event index: exact and prefix matches are taken in document order") {
  CHECK(scxml_taken(R"x(<transition event="x" target="a"/><transition event="x.y" target="b"/>)x", "x.y") == "a");
  CHECK(scxml_taken(R"x(<transition event="x.y" target="b"/><transition event="x" target="a"/>)x", "x.y") == "b");
  CHECK(scxml_taken(R"x(<transition event="x.y" target="b"/><transition event="x" target="a"/>)x", "x.z") == "a");
  // A false guard passes the turn to the next candidate under another key.
  CHECK(scxml_taken(R"x(<transition event="x" cond="In('e')" target="a"/><transition event="x.y" target="b"/>)x"
                    R"x(<transition event="x" target="c"/>)x", "x.y") == "b");
}

TEST_CASE("event index: eventless transitions are selected without an event and never with one") {
  CHECK(scxml_taken(R"x(<transition event="go" target="a"/><transition target="b" cond="In('c')"/>)x", "go") == "a");
  CHECK(scxml_taken(R"x(<transition event="go" target="a"/><transition target="b"/>)x", "") == "b");
}

TEST_CASE("event index: internal events are looked up like external ones") {
  // s raises `inner` on entry; its indexed transition on `inner` takes it to a before any external event.
  const std::string onentry = R"x(<onentry><raise event="inner.x"/></onentry>)x";
  CHECK(scxml_taken(R"x(<transition event="outer" target="b"/><transition event="inner" target="a"/>)x", "", onentry) == "a");
  CHECK(scxml_taken(R"x(<transition event="inner.y" target="b"/><transition event="outer" target="c"/>)x", "outer", onentry) == "c");
}

namespace {

/// An XState machine whose initial state `s` has the transitions of `on` (a JSON object body),
/// after filler transitions when `indexed`.
std::shared_ptr<const xsn::statechart> xstate_chart(const std::string& on, bool indexed) {
  std::string fillers;
  for (std::uint32_t i = 0; indexed && i <= xsn::statechart::index_threshold; ++i)
    fillers.append("\"").append(xsn_test::named("filler", i)).append("\": \"filled\", ");
  return xsn_test::xstate_chart(R"x({"id": "m", "initial": "s", "states": {"s": {"on": {)x" + fillers + on +
                                R"x(}}, "a": {}, "b": {}, "c": {}, "filled": {}}})x");
}

/// What `event` leads to from `s` with `on`, checked to be the same indexed and scanned.
std::string xstate_taken(const std::string& on, const std::string& event) {
  const auto indexed = xstate_chart(on, true);
  REQUIRE((indexed->hot_states[indexed->find_state("m.s")].flags & xsn::hot_state::indexed));
  const auto result = after(indexed, {event});
  CHECK(result == after(xstate_chart(on, false), {event}));
  return result;
}

}  // namespace

TEST_CASE("event index: XState wildcard and partial descriptors") {
  const std::string on = R"x("*": "c", "foo.*": "b", "foo.bar": "a")x";
  CHECK(xstate_taken(on, "foo.bar") == "m.a");
  CHECK(xstate_taken(on, "foo.baz") == "m.b");
  CHECK(xstate_taken(on, "foo") == "m.b");
  CHECK(xstate_taken(on, "foo.bar.deeper") == "m.b");  // a name no descriptor names
  CHECK(xstate_taken(on, "food") == "m.c");
  CHECK(xstate_taken(R"x("foo.bar.*": "a", "foo.*": "b")x", "foo.bar.x") == "m.a");
  CHECK(xstate_taken(R"x("foo": "a")x", "foo.bar") == "m.s");  // XState: no token-prefix matching
}

TEST_CASE("event index: a chart of more than 256 states walks its configuration by the summary of its words") {
  // Two regions whose active states lie hundreds of states apart: selection and exit walk the
  // configuration of a big chart through the summary of its non-empty words (session::impl::big_config_).
  const auto fillers = [](const char* prefix) {
    std::string s;
    for (int i = 0; i < 300; ++i) s.append("<state id=\"").append(xsn_test::named(prefix, i)).append("\"/>");
    return s;
  };
  std::string doc = R"x(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="null" initial="p">)x"
                    R"x(<parallel id="p"><state id="r1" initial="a1"><state id="a1"><transition event="go" target="a2"/></state>)x";
  doc.append(fillers("f")).append(R"x(<state id="a2"><transition event="go" target="a1"/></state></state>)x");
  doc.append(R"x(<state id="r2" initial="b1"><state id="b1"><transition event="go" target="b2"/></state>)x");
  doc.append(fillers("g")).append(R"x(<state id="b2"><transition event="back" target="out"/></state></state>)x");
  doc.append(R"x(</parallel><state id="out"/></scxml>)x");
  auto r = xsn::parse_scxml(doc, "big.scxml");
  REQUIRE(r);
  REQUIRE(r.chart->states.size() > 600);
  xsn_test::session_driver d(r.chart, {});
  CHECK(d.config() == "p r1 a1 r2 b1 ");
  d.send("go");
  CHECK(d.config() == "p r1 a2 r2 b2 ");
  d.send("go");
  CHECK(d.config() == "p r1 a1 r2 b2 ");
  d.send("back");
  CHECK(d.config() == "out ");
}
