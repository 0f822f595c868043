// One-pass validation (issue 13): the SCXML loader reports every error of a document, bounded,
// each at the offending attribute; `check_scxml` / `check_document` compile ECMAScript without
// running it, check In() ids and warn about what only a program or a datamodel can supply.
#include <xsn/parse/check.hpp>

#include "catch.hpp"

#include <xsn/config.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

std::string doc(const std::string& body, const std::string& attrs = " datamodel=\"ecmascript\"") {
  return "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">\n" + body + "\n</scxml>\n";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// The diagnostics as `file:line:col: message` lines, for messages and checks.
std::vector<std::string> lines(const std::vector<xsn::diagnostic>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.to_string());
  return out;
}

/// True when some diagnostic of `ds`, as text, starts with `where` and contains `what`.
bool has(const std::vector<xsn::diagnostic>& ds, const std::string& where, const std::string& what) {
  for (const auto& l : lines(ds))
    if (l.rfind(where, 0) == 0 && contains(l, what)) return true;
  return false;
}

std::size_t count(const std::vector<xsn::diagnostic>& ds, xsn::severity level) {
  std::size_t n = 0;
  for (const auto& d : ds) n += d.level == level ? 1 : 0;
  return n;
}

bool in_document_order(const std::vector<xsn::diagnostic>& ds) {
  for (std::size_t i = 1; i < ds.size(); ++i) {
    const auto& a = ds[i - 1].loc;
    const auto& b = ds[i].loc;
    if (a.line > b.line || (a.line == b.line && a.column > b.column)) return false;
  }
  return true;
}

/// A file in the temporary directory, removed at the end of the test.
struct temp_file {
  std::filesystem::path path;
  temp_file(const std::string& name, const std::string& text)
      : path(std::filesystem::temp_directory_path() / ("xsn-validation-" + name)) {
    std::ofstream(path, std::ios::binary) << text;
  }
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
};

}  // namespace

TEST_CASE("validation: the loader reports every error of a document in one pass") {
  // Three mistakes of three kinds: a structural one, an unknown target, a bad initial.
  const auto text = doc(
      "<state id=\"a\" initial=\"zz\">\n"                     // line 2: unknown initial
      "  <state id=\"a1\"><onentry><send delay=\"soon\" event=\"e\"/></onentry></state>\n"  // 3: bad delay
      "  <transition event=\"go\" target=\"nowhere\"/>\n"       // 4: unknown target
      "</state>\n"
      "<state id=\"a1\"/>",                                      // 6: duplicate id
      "");
  auto r = xsn::parse_scxml(text, "three.scxml");
  INFO(Catch::Detail::stringify(lines(r.errors)));
  REQUIRE_FALSE(r);
  CHECK(r.errors.size() == 4);
  CHECK(in_document_order(r.errors));
  CHECK(has(r.errors, "three.scxml:2:15:", "initial state 'zz' of state 'a' is not a state id"));
  CHECK(has(r.errors, "three.scxml:3:33:", "invalid delay 'soon'"));
  CHECK(has(r.errors, "three.scxml:4:26:", "transition target 'nowhere' is not a state id"));
  CHECK(has(r.errors, "three.scxml:6:8:", "duplicate state id 'a1'"));
}

TEST_CASE("validation: an unknown initial names the state it is the initial of") {
  auto r = xsn::parse_scxml(doc("<state id=\"a\"><state id=\"b\"/></state>", " initial=\"zz\""), "i.scxml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() == "i.scxml:1:62: initial state 'zz' of the document (<scxml initial>) is not a state id");
  r = xsn::parse_scxml(doc("<state id=\"a\" initial=\"b zz\"><state id=\"b\"/></state>", ""), "i.scxml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() == "i.scxml:2:15: initial state 'zz' of state 'a' is not a state id");
  r = xsn::parse_scxml(doc("<state id=\"a\" initial=\" \"><state id=\"b\"/></state>", ""), "i.scxml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() == "i.scxml:2:15: empty 'initial' attribute");
  // A history default and an <initial> that name unknown states: reported once each.
  r = xsn::parse_scxml(doc("<state id=\"a\"><initial><transition target=\"q\"/></initial><history id=\"h\"><transition target=\"r\"/></history><state id=\"b\"/></state>", ""), "h.scxml");
  INFO(Catch::Detail::stringify(lines(r.errors)));
  REQUIRE(r.errors.size() == 2);
  CHECK(contains(r.errors[0].message, "transition target 'q'"));
  CHECK(contains(r.errors[1].message, "transition target 'r'"));
}

TEST_CASE("validation: a document made of mistakes reports the first hundred then too many errors") {
  std::string body = "<state id=\"a\">\n";
  for (int i = 0; i < 250; ++i) body += "<transition event=\"e\" target=\"missing\"/>\n";
  body += "</state>";
  auto r = xsn::parse_scxml(doc(body, ""), "many.scxml");
  REQUIRE_FALSE(r);
  REQUIRE(r.errors.size() == xsn::max_parse_errors + 1);
  CHECK(in_document_order(r.errors));
  CHECK(r.errors[0].loc.line == 3);
  CHECK(r.errors[xsn::max_parse_errors - 1].loc.line == 3 + xsn::max_parse_errors - 1);
  CHECK(contains(r.errors.back().message, "too many errors"));
  CHECK(r.errors.back().loc.line == 3 + xsn::max_parse_errors);  // where the first left out is
  // check_scxml keeps the same bound over loader errors and its own.
  auto c = xsn::check_scxml(doc(body), "many.scxml");
  CHECK(c.diagnostics.size() == xsn::max_parse_errors + 1);
}

TEST_CASE("validation: In() of an unknown state is an error in both datamodels") {
  const std::string states = "<state id=\"a\"><transition event=\"e\" cond=\"In('nope') || In(&quot;a&quot;)\" target=\"b\"/>"
                             "<transition event=\"f\" cond=\"x.In('other') || 'In(&quot;zz&quot;)' === s // In('zz')\" target=\"b\"/></state>"
                             "<state id=\"b\"/>";
  auto c = xsn::check_scxml(doc("<datamodel><data id=\"x\" expr=\"{}\"/><data id=\"s\"/></datamodel>" + states), "in.scxml");
  INFO(Catch::Detail::stringify(lines(c.diagnostics)));
  REQUIRE(c.diagnostics.size() == 1);  // not In('a'), not x.In(...), not inside strings or comments
  CHECK(c.diagnostics[0].to_string() == "in.scxml:2:98: In('nope'): 'nope' is not a state id");
  CHECK(c.chart != nullptr);  // the loader accepts it: In() ids are a check, not a load error
  CHECK_FALSE(c);

  auto n = xsn::check_scxml(doc("<state id=\"a\"><transition cond=\"In('zz')\" target=\"b\"/><transition cond=\"In('b')\" target=\"b\"/></state><state id=\"b\"/>", ""), "null.scxml");
  INFO(Catch::Detail::stringify(lines(n.diagnostics)));
  REQUIRE(n.diagnostics.size() == 1);
  CHECK(n.diagnostics[0].to_string() == "null.scxml:2:27: In('zz'): 'zz' is not a state id");
}

TEST_CASE("validation: ECMAScript syntax errors are reported at the attribute that holds them") {
  if (!XSN_WITH_ECMASCRIPT) return;
  const auto text = doc(
      "<datamodel><data id=\"d\" expr=\"{a:\"/></datamodel>\n"                         // line 2
      "<state id=\"a\">\n"
      "  <transition event=\"e\" cond=\"x ==\" target=\"b\"/>\n"                          // line 4
      "  <onentry><assign location=\"1 +\" expr=\"2\"/><foreach array=\"[]\" item=\"a b\"/></onentry>\n"  // 5
      "  <onexit><log label=\"l\" expr=\"'unterminated\"/>\n"                             // 6
      "    <script>var = 1;</script></onexit>\n"                                          // 7
      "</state><state id=\"b\"><onentry><send eventexpr=\"'ok'\" delayexpr=\")\"/></onentry></state>");  // 8
  auto c = xsn::check_scxml(text, "js.scxml");
  INFO(Catch::Detail::stringify(lines(c.diagnostics)));
  CHECK(c.chart != nullptr);
  CHECK(c.errors() == 7);
  CHECK(in_document_order(c.diagnostics));
  CHECK(has(c.diagnostics, "js.scxml:2:25: ", "ECMAScript error in 'expr' of <data> `{a:`: SyntaxError"));
  CHECK(has(c.diagnostics, "js.scxml:4:25: ", "'cond' of <transition> `x ==`: SyntaxError"));
  CHECK(has(c.diagnostics, "js.scxml:5:20: ", "'location' of <assign> `1 +`"));
  CHECK(has(c.diagnostics, "js.scxml:5:65: ", "'item' of <foreach> `a b`"));
  CHECK(has(c.diagnostics, "js.scxml:6:26: ", "'expr' of <log> `'unterminated`: SyntaxError"));
  CHECK(has(c.diagnostics, "js.scxml:7:5: ", "<script> `var = 1;`: SyntaxError"));
  CHECK(has(c.diagnostics, "js.scxml:8:55: ", "'delayexpr' of <send> `)`"));
}

TEST_CASE("validation: expressions are compiled and never run") {
  if (!XSN_WITH_ECMASCRIPT) return;
  // Run, any of these would hang until the time budget (an error) or throw (an error).
  const auto text = doc(
      "<datamodel><data id=\"d\" expr=\"(function(){ throw new Error('ran') })()\"/></datamodel>"
      "<script>while (true) {}</script>"
      "<state id=\"a\"><transition event=\"e\" cond=\"(function(){ for(;;){} })()\" target=\"a\"/>"
      "<onentry><script>throw new Error('ran');</script><log expr=\"undefinedFunction()\"/></onentry></state>");
  auto c = xsn::check_scxml(text, "loop.scxml");
  INFO(Catch::Detail::stringify(lines(c.diagnostics)));
  CHECK(c.diagnostics.empty());
  CHECK(c);
}

TEST_CASE("validation: malformed expressions give located errors and never crash") {
  if (!XSN_WITH_ECMASCRIPT) return;
  std::string long_expr;
  for (int i = 0; i < 200000; ++i) long_expr += "1+";  // 400 kB, ends with '+'
  std::string deep(100000, '(');                       // deeper than the compiler may recurse
  const auto text = doc(
      "<state id=\"a\">\n"
      "<transition event=\"e\" cond=\"'abc\" target=\"a\"/>\n"
      "<transition event=\"e\" cond=\"&quot;abc\" target=\"a\"/>\n"
      "<transition event=\"e\" cond=\"" + long_expr + "\" target=\"a\"/>\n"
      "<transition event=\"e\" cond=\"" + deep + "\" target=\"a\"/>\n"
      "<transition event=\"e\" cond=\"'\xff\xfe\x80' == x\" target=\"a\"/>\n"
      "<transition event=\"e\" cond=\"\xc3\x28 +\" target=\"a\"/>\n"
      "</state>");
  auto c = xsn::check_scxml(text, "bad.scxml");
  INFO(Catch::Detail::stringify(lines(c.diagnostics)).substr(0, 2000));
  CHECK(has(c.diagnostics, "bad.scxml:3:", "SyntaxError"));
  CHECK(has(c.diagnostics, "bad.scxml:4:", "SyntaxError"));
  CHECK(has(c.diagnostics, "bad.scxml:5:", "`1+1+1+"));  // quoted, cut short
  CHECK(has(c.diagnostics, "bad.scxml:6:", "ECMAScript error"));
  CHECK(has(c.diagnostics, "bad.scxml:8:", "ECMAScript error"));
  for (const auto& d : c.diagnostics) CHECK(d.message.size() < 1000);
}

TEST_CASE("validation: native actions and the null datamodel's expressions are warnings") {
  const auto text = doc(
      "<datamodel><data id=\"d\" expr=\"1\"/></datamodel>\n"
      "<state id=\"a\" xmlns:xsn=\"http://xsn.dev/scxml\">\n"
      "  <onentry><xsn:action name=\"start_motor\"/><log expr=\"1 + 1\"/><xsn:action name=\"start_motor\"/></onentry>\n"
      "  <transition event=\"e\" cond=\"x &gt; 1\" target=\"a\"/>\n"
      "  <transition event=\"f\" cond=\"In('a')\" target=\"a\"/>\n"
      "</state>",
      "");
  auto c = xsn::check_scxml(text, "warn.scxml");
  INFO(Catch::Detail::stringify(lines(c.diagnostics)));
  CHECK(c);  // warnings only
  CHECK(count(c.diagnostics, xsn::severity::error) == 0);
  CHECK(count(c.diagnostics, xsn::severity::warning) == 4);
  CHECK(has(c.diagnostics, "warn.scxml:2:12: warning: <data id=\"d\">", "null datamodel"));
  CHECK(has(c.diagnostics, "warn.scxml:4:12: warning: native action 'start_motor'", "binds it"));
  CHECK(has(c.diagnostics, "warn.scxml:4:49: warning: 'expr' of <log> `1 + 1`", "null datamodel"));
  CHECK(has(c.diagnostics, "warn.scxml:5:25: warning: 'cond' of <transition> `x > 1` is not an In('id') predicate", ""));

  // Under ECMAScript the same expressions are fine; the native action is still only the program's.
  auto e = xsn::check_scxml(text.substr(0, text.find('>')) + " datamodel=\"ecmascript\"" + text.substr(text.find('>')), "warn.scxml");
  INFO(Catch::Detail::stringify(lines(e.diagnostics)));
  CHECK(e);
  CHECK(e.diagnostics.size() == 1);
}

TEST_CASE("validation: expressions are checked even when the document has other errors") {
  if (!XSN_WITH_ECMASCRIPT) return;
  auto c = xsn::check_scxml(doc("<state id=\"a\"><transition event=\"e\" cond=\"x ==\" target=\"nowhere\"/><bogus/>"
                                "<transition event=\"f\" cond=\"In('a') &amp;&amp; In('gone')\" target=\"a\"/></state>"), "both.scxml");
  INFO(Catch::Detail::stringify(lines(c.diagnostics)));
  CHECK(c.chart == nullptr);
  CHECK(c.errors() == 4);
  CHECK(has(c.diagnostics, "both.scxml:2:", "In('gone'): 'gone' is not a state id"));  // and not In('a')
  CHECK(has(c.diagnostics, "both.scxml:2:", "SyntaxError"));
  CHECK(has(c.diagnostics, "both.scxml:2:", "'nowhere' is not a state id"));
  CHECK(has(c.diagnostics, "both.scxml:2:", "unknown element <bogus>"));
}

TEST_CASE("validation: an inline chart is checked against its own states and datamodel") {
  const auto text = doc(
      "<state id=\"a\"><invoke type=\"scxml\"><content>\n"
      "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\">\n"
      "<state id=\"c\"><transition cond=\"In('a')\" target=\"c\"/><onentry><log expr=\"1\"/></onentry></state></scxml>\n"
      "</content></invoke><transition cond=\"In('c')\" target=\"a\"/></state>");
  auto c = xsn::check_scxml(text, "inline.scxml");
  INFO(Catch::Detail::stringify(lines(c.diagnostics)));
  CHECK(c.errors() == 2);  // In('a') in the child, In('c') in the parent
  CHECK(has(c.diagnostics, "inline.scxml:4:", "In('a')"));
  CHECK(has(c.diagnostics, "inline.scxml:5:", "In('c')"));
  CHECK(has(c.diagnostics, "inline.scxml:4:", "warning: 'expr' of <log>"));  // the child has no datamodel
}

TEST_CASE("validation: check_document reads SCXML and XState files") {
  temp_file good("good.scxml", doc("<state id=\"a\"><transition event=\"e\" cond=\"1 &lt; 2\" target=\"a\"/></state>"));
  auto g = xsn::check_document(good.path);
  CHECK(g);
  CHECK(g.diagnostics.empty());

  temp_file machine("machine.json", R"({"id": "m", "initial": "a", "states": {"a": {"on": {"go": "b"}}, "b": {}}})");
  auto m = xsn::check_document(machine.path);
  CHECK(m);
  temp_file bad_machine("bad-machine.json", R"({"id": "m", "initial": "zz", "states": {"a": {"on": {"go": "q"}}}})");
  auto b = xsn::check_document(bad_machine.path);
  CHECK_FALSE(b);
  CHECK(b.errors() == 2);

  auto missing = xsn::check_document("/nonexistent/dir/machine.scxml");
  CHECK_FALSE(missing);
  REQUIRE(missing.diagnostics.size() == 1);
  CHECK(contains(missing.diagnostics[0].message, "cannot read file"));
}
