#include <xsn/parse/scxml.hpp>

#include "catch.hpp"

#include <string>

namespace {

std::string doc(const std::string& body, const std::string& attrs = "") {
  return "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">\n" + body + "\n</scxml>\n";
}

/// Parses `text`; requires failure and returns the first diagnostic as `file:line:col: message`.
std::string first_error(const std::string& text) {
  auto r = xsn::parse_scxml(text, "bad.scxml");
  REQUIRE_FALSE(r);
  REQUIRE_FALSE(r.errors.empty());
  return r.errors.front().to_string();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a valid document compiles to states in document order") {
  auto r = xsn::parse_scxml(doc(R"(<state id="a" initial="a2"><state id="a1"/><state id="a2"><transition event="go.now" target="b"/></state></state>
<parallel id="b"><state id="b1"/><state id="b2"/></parallel><final id="f"/>)"), "ok.scxml");
  REQUIRE(r);
  const auto& c = *r.chart;
  REQUIRE(c.states.size() == 8);
  CHECK(c.states[1].id == "a");
  CHECK(c.states[1].kind == xsn::state_kind::compound);
  CHECK(c.states[1].subtree_end == 4);
  CHECK(c.states[4].kind == xsn::state_kind::parallel);
  CHECK(c.states[7].kind == xsn::state_kind::final_state);
  CHECK(c.find_state("a2") == 3);
  CHECK(c.transitions[c.states[1].initial].targets == std::vector<xsn::state_index>{3});
  const auto& t = c.transitions[c.states[3].transitions.at(0)];
  CHECK(t.domain == 0);
  CHECK(c.matches(t, "go.now", c.find_name("go.now")));
  CHECK(c.matches(t, "go.now.please", xsn::npos));
  CHECK_FALSE(c.matches(t, "go", xsn::npos));
  CHECK_FALSE(c.matches(t, "go.nowhere", xsn::npos));
}

TEST_CASE("event descriptors match by whole tokens") {
  CHECK(xsn::descriptor_matches("error", "error.execution"));
  CHECK(xsn::descriptor_matches("*", "anything"));
  CHECK_FALSE(xsn::descriptor_matches("error", "errors"));
  CHECK_FALSE(xsn::descriptor_matches("error.execution", "error"));
  auto r = xsn::parse_scxml(doc(R"(<state id="s"><transition event="foo.* bar." target="s"/></state>)"), "d.scxml");
  REQUIRE(r);
  const auto& t = r.chart->transitions[r.chart->states[1].transitions[0]];
  CHECK(r.chart->matches(t, "foo.x", xsn::npos));
  CHECK(r.chart->matches(t, "bar", r.chart->find_name("bar")));
  CHECK_FALSE(r.chart->matches(t, "foobar", xsn::npos));
}

TEST_CASE("the default initial state is the first child in document order") {
  auto r = xsn::parse_scxml(doc(R"(<state id="p"><history id="h"><transition target="q"/></history><state id="q"/><state id="r"/></state>)"), "i.scxml");
  REQUIRE(r);
  const auto& c = *r.chart;
  CHECK(c.transitions[c.states[0].initial].targets == std::vector<xsn::state_index>{1});
  CHECK(c.transitions[c.states[1].initial].targets == std::vector<xsn::state_index>{c.find_state("q")});
}

TEST_CASE("inline content charts, data and invoke parse") {
  auto r = xsn::parse_scxml(doc(R"(<datamodel><data id="x" expr="1"/><data id="y">{"a": 1}</data></datamodel>
<state id="s"><invoke id="i"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><final id="done"/></scxml></content></invoke></state>)", " datamodel=\"ecmascript\""), "inv.scxml");
  REQUIRE(r);
  CHECK(r.chart->data.size() == 2);
  CHECK(r.chart->data[1].text.value() == R"({"a": 1})");
  REQUIRE(r.chart->inline_charts.size() == 1);
  CHECK(r.chart->invokes.at(0).body->chart == 0);
}

TEST_CASE("malformed and invalid documents give file:line:col errors") {
  struct bad_case {
    const char* what;
    std::string text;
    const char* expect;  // part of the message
    const char* where;   // expected "line:col" prefix after the file name
  };
  const std::vector<bad_case> cases = {
      {"not XML", "this is not xml", "XML error", "bad.scxml:1:"},
      {"unclosed tag", doc("<state id=\"a\">"), "XML error", "bad.scxml:"},
      {"empty document", "", "XML error", "bad.scxml:"},
      {"wrong root", "<foo/>", "root element must be <scxml>", "bad.scxml:1:1"},
      {"wrong namespace", "<scxml xmlns=\"urn:other\"><state id=\"a\"/></scxml>", "namespace", "bad.scxml:1:1"},
      {"bad version", doc("<state id=\"a\"/>").replace(doc("").find("1.0"), 3, "2.0"), "unsupported SCXML version", "bad.scxml:1:48:"},
      {"unknown datamodel", doc("<state id=\"a\"/>", " datamodel=\"python\""), "unknown datamodel", "bad.scxml:1:62:"},
      {"bad binding", doc("<state id=\"a\"/>", " binding=\"lazy\""), "binding", "bad.scxml:1:62:"},
      {"no states", doc(""), "at least one state", "bad.scxml:1:1"},
      {"duplicate id", doc("<state id=\"a\"/>\n<state id=\"a\"/>"), "duplicate state id 'a'", "bad.scxml:3:8:"},
      {"unknown target", doc("<state id=\"a\">\n  <transition event=\"e\" target=\"nowhere\"/></state>"), "transition target 'nowhere' is not a state id", "bad.scxml:3:25:"},
      {"unknown initial", doc("<state id=\"a\"/>", " initial=\"zz\""), "initial state 'zz' of the document (<scxml initial>) is not a state id", "bad.scxml:1:62:"},
      {"initial outside its state", doc("<state id=\"a\" initial=\"b\"><state id=\"a1\"/></state>\n<state id=\"b\"/>"), "not a descendant", "bad.scxml:2:1"},
      {"initial attribute and element", doc("<state id=\"a\" initial=\"a1\"><initial><transition target=\"a1\"/></initial><state id=\"a1\"/></state>"), "both", "bad.scxml:2:"},
      {"initial on atomic state", doc("<state id=\"a\" initial=\"a\"/>"), "atomic state 'a'", "bad.scxml:2:1"},
      {"initial without transition", doc("<state id=\"a\"><initial/><state id=\"a1\"/></state>"), "exactly one <transition>", "bad.scxml:2:"},
      {"initial transition with event", doc("<state id=\"a\"><initial><transition event=\"e\" target=\"a1\"/></initial><state id=\"a1\"/></state>"), "may not have 'event'", "bad.scxml:2:"},
      {"initial on parallel", doc("<parallel id=\"p\" initial=\"a\"><state id=\"a\"/></parallel>"), "'initial' is not allowed", "bad.scxml:2:1"},
      {"history without default", doc("<state id=\"a\"><history id=\"h\"/><state id=\"a1\"/></state>"), "must have a default <transition>", "bad.scxml:2:"},
      {"shallow history default not a child", doc("<state id=\"a\"><history id=\"h\"><transition target=\"a11\"/></history><state id=\"a1\"><state id=\"a11\"/></state></state>"), "must be a child", "bad.scxml:2:"},
      {"history default outside parent", doc("<state id=\"a\"><history type=\"deep\" id=\"h\"><transition target=\"b\"/></history><state id=\"a1\"/></state><state id=\"b\"/>"), "must be a descendant", "bad.scxml:2:"},
      {"bad history type", doc("<state id=\"a\"><history id=\"h\" type=\"medium\"><transition target=\"a1\"/></history><state id=\"a1\"/></state>"), "history type", "bad.scxml:2:"},
      {"unknown element", doc("<state id=\"a\"><bogus/></state>"), "unknown element <bogus>", "bad.scxml:2:"},
      {"unknown executable content", doc("<state id=\"a\"><onentry><explode/></onentry></state>"), "unknown executable content", "bad.scxml:2:"},
      {"raise without event", doc("<state id=\"a\"><onentry><raise/></onentry></state>"), "<raise> must have an 'event'", "bad.scxml:2:"},
      {"send with event and eventexpr", doc("<state id=\"a\"><onentry><send event=\"e\" eventexpr=\"'e'\"/></onentry></state>"), "both 'event' and 'eventexpr'", "bad.scxml:2:"},
      {"send with bad delay", doc("<state id=\"a\"><onentry><send event=\"e\" delay=\"soon\"/></onentry></state>"), "invalid delay 'soon'", "bad.scxml:2:"},
      {"send with content and params", doc("<state id=\"a\"><onentry><send event=\"e\"><param name=\"p\" expr=\"1\"/><content>x</content></send></onentry></state>"), "<content> together with", "bad.scxml:2:"},
      {"send without event", doc("<state id=\"a\"><onentry><send target=\"#_parent\"/></onentry></state>"), "must have 'event'", "bad.scxml:2:"},
      {"assign without location", doc("<state id=\"a\"><onentry><assign expr=\"1\"/></onentry></state>", " datamodel=\"ecmascript\""), "'location'", "bad.scxml:2:"},
      {"data without id", doc("<datamodel><data expr=\"1\"/></datamodel><state id=\"a\"/>", " datamodel=\"ecmascript\""), "<data> must have an 'id'", "bad.scxml:2:"},
      {"data with expr and content", doc("<datamodel><data id=\"d\" expr=\"1\">2</data></datamodel><state id=\"a\"/>", " datamodel=\"ecmascript\""), "only one of", "bad.scxml:2:"},
      {"foreach without item", doc("<state id=\"a\"><onentry><foreach array=\"x\"/></onentry></state>", " datamodel=\"ecmascript\""), "must have an 'item'", "bad.scxml:2:"},
      {"cancel without sendid", doc("<state id=\"a\"><onentry><cancel/></onentry></state>"), "'sendid' or 'sendidexpr'", "bad.scxml:2:"},
      {"else not last", doc("<state id=\"a\"><onentry><if cond=\"In('a')\"><else/><elseif cond=\"In('a')\"/></if></onentry></state>"), "after <else>", "bad.scxml:2:"},
      {"bad transition type", doc("<state id=\"a\"><transition type=\"sideways\" target=\"a\"/></state>"), "transition type", "bad.scxml:2:"},
      {"states inside final", doc("<final id=\"f\"><state id=\"x\"/></final>"), "not allowed in <final>", "bad.scxml:2:"},
      {"script src missing", doc("<script src=\"no-such-file.js\"/><state id=\"a\"/>", " datamodel=\"ecmascript\""), "cannot read script src", "bad.scxml:2:"},
      {"invalid event descriptor", doc("<state id=\"a\"><transition event=\"a..b\" target=\"a\"/></state>"), "invalid event descriptor", "bad.scxml:2:"},
      {"invoke with src and content", doc("<state id=\"a\"><invoke src=\"x.scxml\"><content>y</content></invoke></state>"), "both 'src' and <content>", "bad.scxml:2:"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto msg = first_error(c.text);
    INFO(msg);
    CHECK(contains(msg, c.expect));
    CHECK(msg.rfind(c.where, 0) == 0);
  }
}

TEST_CASE("several errors are all reported, in document order") {
  auto r = xsn::parse_scxml(doc("<state id=\"a\"><transition target=\"x\"/></state>\n<state id=\"b\"><transition target=\"y\"/></state>"), "two.scxml");
  REQUIRE_FALSE(r);
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].loc.line < r.errors[1].loc.line);
}

TEST_CASE("a missing file is a load error, not a crash") {
  auto r = xsn::load_scxml("/nonexistent/dir/machine.scxml");
  REQUIRE_FALSE(r);
  CHECK(contains(r.errors.at(0).to_string(), "cannot read file"));
}

TEST_CASE("random garbage never crashes the parser") {
  std::string base = doc(R"(<state id="a"><onentry><send event="e" delay="1s"/></onentry><transition event="e" target="b"/></state><state id="b"/>)");
  std::uint32_t seed = 12345;
  for (int i = 0; i < 500; ++i) {
    std::string s = base;
    for (int k = 0; k < 3; ++k) {
      seed = seed * 1664525u + 1013904223u;
      auto pos = seed % s.size();
      seed = seed * 1664525u + 1013904223u;
      s[pos] = static_cast<char>(seed >> 24);
    }
    auto r = xsn::parse_scxml(s, "fuzz.scxml");
    CHECK((static_cast<bool>(r) || !r.errors.empty()));
  }
}
