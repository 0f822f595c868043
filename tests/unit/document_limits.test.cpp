// What a loader does with hostile documents: nesting beyond the stated limits, `src` resources
// outside the document's folder or without end, XML that pugixml accepts but is not well-formed,
// snapshots nested without end. Each is a located error (or errc::bad_snapshot), never a crash.
#include <xsn/parse/scxml.hpp>

#include "catch.hpp"

#include <xsn/parse/xstate.hpp>
#include <xsn/core/errors.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

const std::string head = "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"";

/// `depth` nested `<state>`s, each on its own line (line 2 holds the first), the innermost atomic.
std::string nested_states(std::size_t depth) {
  std::string s = head + ">\n";
  for (std::size_t i = 0; i < depth; ++i) {
    s += "<state id=\"s";
    s += std::to_string(i);
    s += "\">\n";
  }
  for (std::size_t i = 0; i < depth; ++i) s += "</state>";
  return s + "</scxml>";
}

std::string messages(const xsn::parse_result& r) {
  std::string out;
  for (const auto& d : r.errors) out += d.to_string() + "\n";
  return out;
}

/// A fresh folder under the temporary directory, removed at the end of the test.
struct temp_folder {
  fs::path dir;
  explicit temp_folder(const std::string& name) {
    dir = fs::temp_directory_path() / ("xsn-limits-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "docs");
  }
  ~temp_folder() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  void write(const fs::path& rel, const std::string& text) const { std::ofstream(dir / rel, std::ios::binary) << text; }
};

std::string data_src(const std::string& src) {
  return head + " datamodel=\"ecmascript\">\n<datamodel>\n  <data id=\"d\" src=\"" + src + "\"/>\n</datamodel>\n<state id=\"a\"/></scxml>";
}

}  // namespace

TEST_CASE("document limits: states nested one deeper than the limit are a located error") {
  auto r = xsn::parse_scxml(nested_states(xsn::max_state_depth + 1), "deep.scxml");
  REQUIRE_FALSE(r);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() == "deep.scxml:" + std::to_string(xsn::max_state_depth + 2) + ":1: states nested deeper than " +
                                       std::to_string(xsn::max_state_depth));
}

TEST_CASE("document limits: 100000 nested states do not overflow the stack") {
  auto r = xsn::parse_scxml(nested_states(100'000), "deeper.scxml");
  REQUIRE_FALSE(r);
  CHECK(messages(r) == "deeper.scxml:1002:1: states nested deeper than 1000\n");
}

TEST_CASE("document limits: states at the limit load and their precomputed entry sets stay linear") {
  auto r = xsn::parse_scxml(nested_states(xsn::max_state_depth), "limit.scxml");
  REQUIRE(r);
  // Each state's initial transition enters the whole chain below it: precomputing every one
  // would hold depth*depth/2 (500,000) entries. Large entry sets are computed when taken.
  std::size_t entries = 0;
  for (const auto& t : r.chart->transitions) entries += t.entry.size();
  CHECK(entries <= 64 * r.chart->transitions.size());
}

TEST_CASE("document limits: elements nested deeper than the limit are a located error") {
  std::string s = head + " datamodel=\"ecmascript\">\n<state id=\"a\"><onentry>\n";
  for (std::size_t i = 0; i < xsn::max_element_depth; ++i) s += "<if cond=\"true\">\n";
  for (std::size_t i = 0; i < xsn::max_element_depth; ++i) s += "</if>";
  s += "</onentry></state></scxml>";
  auto r = xsn::parse_scxml(s, "ifs.scxml");
  REQUIRE_FALSE(r);
  // <scxml> at depth 1, <state> 2, <onentry> 3 (lines 1 and 2): the k-th <if> is on line 2 + k,
  // at depth 3 + k; the first too deep is at depth max + 1, on line max.
  CHECK(messages(r) == "ifs.scxml:" + std::to_string(xsn::max_element_depth) + ":1: elements nested deeper than " +
                           std::to_string(xsn::max_element_depth) + "\n");
}

TEST_CASE("document limits: XState states nested deeper than the limit are a located error") {
  auto machine = [](std::size_t depth) {
    std::string inner = "{}";
    for (std::size_t i = depth; i-- > 1;) {
      inner = "{\"initial\":\"s" + std::to_string(i) + "\",\"states\":{\"s" + std::to_string(i) + "\":" + inner + "}}";
    }
    return "{\"id\":\"m\",\"initial\":\"s0\",\"states\":{\"s0\":" + inner + "}}";
  };
  CHECK(xsn::parse_xstate(machine(xsn::max_state_depth), "limit.json"));
  auto r = xsn::parse_xstate(machine(xsn::max_state_depth + 1), "deep.json");
  REQUIRE_FALSE(r);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message.rfind("states nested deeper than 1000 (at /states/s0/", 0) == 0);
  CHECK(r.errors[0].loc.line == 1);
  CHECK(r.errors[0].loc.column > 1);
  // 100,000 levels of JSON: refused by the JSON parser, at the value too deep.
  auto j = xsn::parse_xstate(std::string(100'000, '[') + std::string(100'000, ']'), "arrays.json");
  REQUIRE_FALSE(j);
  CHECK(j.errors[0].to_string() == "arrays.json:1:" + std::to_string(xsn::max_xstate_json_depth + 1) + ": invalid JSON: too deep");
}

TEST_CASE("document limits: a duplicate attribute is located at the second one") {
  auto r = xsn::parse_scxml(head + ">\n<state id=\"a\"\n       id=\"b\"/></scxml>", "dup.scxml");
  REQUIRE_FALSE(r);
  CHECK(messages(r) == "dup.scxml:3:8: duplicate attribute 'id'\n");
  auto root = xsn::parse_scxml(head + " version=\"1.0\"><state id=\"a\"/></scxml>", "root.scxml");
  REQUIRE_FALSE(root);
  CHECK(messages(root).find("root.scxml:1:") == 0);
  CHECK(messages(root).find("duplicate attribute 'version'") != std::string::npos);
}

TEST_CASE("document limits: a second root element or text beside the root is refused") {
  auto two = xsn::parse_scxml(head + "><state id=\"a\"/></scxml>\n<scxml/>", "two.scxml");
  REQUIRE_FALSE(two);
  CHECK(messages(two) == "two.scxml:2:1: a second root element <scxml> (a document has one)\n");
}

TEST_CASE("document limits: data src of a device or outside the document's folder is refused at the attribute") {
  temp_folder t("src");
  t.write("secret.txt", "42");
  t.write("docs/inside.json", "{\"x\": 1}");
  const auto docs = t.dir / "docs";
  auto refused = [&](const std::string& src, const std::string& why) {
    auto r = xsn::parse_scxml(data_src(src), "doc.scxml", docs);
    REQUIRE_FALSE(r);
    CHECK(messages(r) == "doc.scxml:3:16: <data src='" + src + "'> refused: " + why + "\n");
  };
  refused("/dev/zero", "outside the document's folder " + fs::canonical(docs).string());
  refused("../secret.txt", "outside the document's folder " + fs::canonical(docs).string());
  refused("../../../../../../../../etc/passwd", "outside the document's folder " + fs::canonical(docs).string());
  refused("file:///etc/passwd", "outside the document's folder " + fs::canonical(docs).string());
  refused("http://example.com/x.json", "only local files are read (not 'http:' URLs)");
  fs::create_symlink(t.dir / "secret.txt", docs / "link.txt");
  refused("link.txt", "outside the document's folder " + fs::canonical(docs).string());
  fs::create_directories(docs / "sub");
  refused("sub", "not a regular file");

  auto ok = xsn::parse_scxml(data_src("inside.json"), "doc.scxml", docs);
  REQUIRE(ok);
  CHECK(ok.chart->data.at(0).text == std::optional<std::string>("{\"x\": 1}"));
  auto dotted = xsn::parse_scxml(data_src("file:sub/../inside.json"), "doc.scxml", docs);
  CHECK(dotted);
  // Missing: not a load error; the datamodel raises error.execution at run time (W3C).
  auto missing = xsn::parse_scxml(data_src("nothere.json"), "doc.scxml", docs);
  REQUIRE(missing);
  CHECK_FALSE(missing.chart->data.at(0).src_error.empty());
}

TEST_CASE("document limits: a device given to a resolver that allows it is still cut at the size limit") {
  xsn::parse_options o;
  o.max_resource_size = 1000;
  o.resolver = [](std::string_view, const fs::path&, std::size_t) {
    return xsn::resource{xsn::resource::outcome::found, std::string(1001, 'x'), {}};
  };
  auto r = xsn::parse_scxml(data_src("anything"), "doc.scxml", o);
  REQUIRE_FALSE(r);
  CHECK(messages(r) == "doc.scxml:3:16: <data src='anything'> refused: larger than 1000 bytes\n");
  // The default resolver reads at most the limit (plus one byte) of a file that is too large.
  temp_folder t("size");
  t.write("docs/big.txt", std::string(2000, 'y'));
  o.resolver = nullptr;
  o.base_dir = t.dir / "docs";
  auto big = xsn::parse_scxml(data_src("big.txt"), "doc.scxml", o);
  REQUIRE_FALSE(big);
  CHECK(messages(big) == "doc.scxml:3:16: <data src='big.txt'> refused: larger than 1000 bytes\n");
}

TEST_CASE("document limits: the embedding program's resolver serves data and script src") {
  xsn::parse_options o;
  o.base_dir = "/virtual";
  std::map<std::string, std::string> seen;
  o.resolver = [&](std::string_view src, const fs::path& base, std::size_t max) {
    seen[std::string(src)] = base.string() + " " + std::to_string(max);
    if (src == "forbidden.js") return xsn::resource{xsn::resource::outcome::refused, {}, "not in the archive"};
    return xsn::resource{xsn::resource::outcome::found, src == "init.js" ? "var y = 2;" : "[1, 2]", {}};
  };
  auto r = xsn::parse_scxml(head + " datamodel=\"ecmascript\">\n<datamodel><data id=\"d\" src=\"mem:d.json\"/></datamodel>\n"
                                   "<script src=\"init.js\"/><state id=\"a\"/></scxml>",
                            "doc.scxml", o);
  REQUIRE(r);
  CHECK(r.chart->data.at(0).text == std::optional<std::string>("[1, 2]"));
  CHECK(seen.at("mem:d.json") == "/virtual 1048576");
  CHECK(seen.count("init.js") == 1);
  auto refused = xsn::parse_scxml(head + " datamodel=\"ecmascript\">\n<script\n src=\"forbidden.js\"/><state id=\"a\"/></scxml>",
                                  "doc.scxml", o);
  REQUIRE_FALSE(refused);
  CHECK(messages(refused) == "doc.scxml:3:2: <script src='forbidden.js'> refused: not in the archive\n");
}

TEST_CASE("document limits: snapshot JSON nested 100000 deep is refused as bad_snapshot") {
  auto c = xsn::parse_scxml(head + " datamodel=\"ecmascript\"><datamodel><data id=\"d\" expr=\"" + std::string(40, '[') +
                                std::string(40, ']') + "\"/></datamodel><state id=\"a\"/></scxml>",
                            "snap.scxml");
  REQUIRE(c);
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session deep(c.chart, ioc.get_executor(), clk);
  CHECK(deep.restore_json(std::string(100'000, '[') + std::string(100'000, ']')) == xsn::errc::bad_snapshot);
  CHECK(deep.restore_json("{\"x\":" + std::string(100'000, '[') + std::string(100'000, ']') + "}") == xsn::errc::bad_snapshot);
  // A snapshot whose data nests 40 deep (deeper than Boost.JSON's default of 32) restores.
  xsn::session s(c.chart, ioc.get_executor(), clk);
  REQUIRE_FALSE(s.start());
  ioc.poll();
  auto text = boost::json::serialize(s.snapshot());
  CHECK_FALSE(deep.restore_json(text));
}

TEST_CASE("document limits: a document that never ends is cut at max_document_size") {
  auto r = xsn::load_document("/dev/zero");
  REQUIRE_FALSE(r);
  CHECK(messages(r) == "/dev/zero:0:0: cannot read file\n");
}
