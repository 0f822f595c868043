// `xsn validate` as a user runs it: the built binary, its exit code, stdout and stderr apart.
#include "catch.hpp"
#include "names.hpp"

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct outcome {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A scratch folder for one test, removed at the end.
struct scratch {
  fs::path dir;
  scratch() {
    std::string tmpl = (fs::temp_directory_path() / "xsn-validate-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary) << text;
    return dir / name;
  }
  /// Runs `xsn validate ARGS...`; stdout and stderr are captured apart.
  outcome validate(const std::vector<std::string>& args) const { return run("validate", args); }
  /// Runs `xsn COMMAND ARGS...`.
  outcome run(const std::string& command, const std::vector<std::string>& args) const {
    std::string cmd = std::string("'") + XSN_BINARY + "' " + command;
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " >'" + (dir / "stdout").string() + "' 2>'" + (dir / "stderr").string() + "'";
    const int status = std::system(cmd.c_str());  // NOLINT(cert-env33-c): the test runs the tool
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir / "stdout"), slurp(dir / "stderr")};
  }
};

std::string scxml(const std::string& body, const std::string& attrs = " datamodel=\"ecmascript\"") {
  return "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">\n" + body + "\n</scxml>\n";
}

std::size_t count_lines(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n' ? 1 : 0;
  return n;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("xsn validate: a valid document says valid on stdout and exits 0") {
  scratch s;
  auto f = s.write("door.scxml", scxml("<state id=\"closed\"><transition event=\"open\" cond=\"1 &lt; 2\" target=\"opened\"/></state><state id=\"opened\"/>"));
  auto r = s.validate({f.string()});
  CHECK(r.code == 0);
  CHECK(r.out == f.string() + ": valid (2 states, 2 transitions)\n");
  CHECK(r.err.empty());
}

TEST_CASE("xsn validate: every error of a document is printed in one run and exits 2") {
  scratch s;
  // The friction of issue 13: a cond that does not compile, an unknown initial, In() of no state.
  auto f = s.write("three.scxml", scxml(
      "<state id=\"a\" initial=\"zz\">\n"
      "  <state id=\"a1\"><transition event=\"go\" cond=\"x ==\" target=\"b\"/></state>\n"
      "  <transition event=\"e\" cond=\"In('nope')\" target=\"b\"/>\n"
      "</state><state id=\"b\"/>"));
  auto r = s.validate({f.string()});
  INFO(r.err);
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK(count_lines(r.err) == 3);
  CHECK(contains(r.err, f.string() + ":2:15: initial state 'zz' of state 'a' is not a state id\n"));
  CHECK(contains(r.err, f.string() + ":3:41: ECMAScript error in 'cond' of <transition> `x ==`: SyntaxError"));
  CHECK(contains(r.err, f.string() + ":4:25: In('nope'): 'nope' is not a state id\n"));
}

TEST_CASE("xsn validate: warnings go to stderr and leave exit 0") {
  scratch s;
  auto f = s.write("motor.scxml", scxml(
      "<state id=\"a\" xmlns:xsn=\"http://xsn.dev/scxml\"><onentry><xsn:action name=\"start_motor\"/><log expr=\"'hi'\"/></onentry></state>", ""));
  auto r = s.validate({f.string()});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.out == f.string() + ": valid (1 states, 1 transitions)\n");
  CHECK(count_lines(r.err) == 2);
  CHECK(contains(r.err, f.string() + ":2:57: warning: native action 'start_motor'"));
  CHECK(contains(r.err, f.string() + ":2:94: warning: 'expr' of <log> `'hi'`: the null datamodel"));
}

TEST_CASE("xsn validate: malformed input is an error, never a crash or a hang") {
  scratch s;
  std::string deep(200000, '[');
  const std::vector<std::string> docs = {
      scxml("<state id=\"a\"><transition cond=\"'unterminated\" target=\"a\"/></state>"),
      scxml("<state id=\"a\"><transition cond=\"" + deep + "\" target=\"a\"/></state>"),
      scxml("<state id=\"a\"><transition cond=\"\xff\xfe\xc3(\" target=\"a\"/></state>"),
      scxml("<state id=\"a\"><onentry><script>while(true){} </script><script>for(;;){</script></onentry></state>"),
      "\xff\xfe<\x00s\x00",
      "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\"><state id=\"a\"",
  };
  int i = 0;
  for (const auto& d : docs) {
    auto f = s.write(xsn_test::named("bad", i++) + ".scxml", d);
    auto r = s.validate({f.string()});
    INFO(f.string() << "\n" << r.err.substr(0, 1000));
    CHECK(r.code == 2);
    CHECK(contains(r.err, f.string() + ":"));
  }
}

TEST_CASE("xsn validate: XState JSON machines are validated by their loader") {
  scratch s;
  auto good = s.write("m.json", R"({"id": "m", "initial": "a", "states": {"a": {"on": {"go": "b"}}, "b": {}}})");
  auto r = s.validate({good.string()});
  CHECK(r.code == 0);
  CHECK(contains(r.out, ": valid ("));
  auto bad = s.write("bad.json", R"({"id": "m", "initial": "zz", "states": {"a": {"on": {"go": "q"}}}})");
  r = s.validate({bad.string()});
  CHECK(r.code == 2);
  CHECK(count_lines(r.err) == 2);
}

TEST_CASE("xsn validate: bad usage exits 64") {
  scratch s;
  auto f = s.write("ok.scxml", scxml("<state id=\"a\"/>"));
  CHECK(s.validate({}).code == 64);
  CHECK(s.validate({f.string(), f.string()}).code == 64);
  auto r = s.validate({"--strict"});
  CHECK(r.code == 64);
  CHECK(contains(r.err, "unknown option '--strict'"));
  CHECK(s.validate({(s.dir / "missing.scxml").string()}).code == 2);
}

TEST_CASE("xsn validate: 10000 nested states are one located error and no crash") {
  scratch s;
  std::string doc = "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\">\n";
  for (int i = 0; i < 10000; ++i) doc += "<state>\n";
  for (int i = 0; i < 10000; ++i) doc += "</state>";
  auto r = s.validate({s.write("deep.scxml", doc + "</scxml>").string()});
  CHECK(r.code == 2);
  CHECK(r.err == (s.dir / "deep.scxml").string() + ":1002:1: states nested deeper than 1000\n");
}

TEST_CASE("xsn validate: a history state entering itself by default is an error and no crash") {
  // fuzz_xstate's finding (fuzz/seeds/xstate/): the root's initial is a history state without
  // target, whose default is the root's initial again; validating it overflowed the stack.
  // The tests run in tests/ (catch_discover_tests' WORKING_DIRECTORY).
  scratch s;
  const std::string input = "../fuzz/seeds/xstate/history-self-default.json";
  REQUIRE(fs::exists(input));
  auto r = s.validate({input});
  CHECK(r.code == 2);
  CHECK(r.err == input + ":7:5: history state 'hd.idle' is its parent's initial state and has no 'target': its default "
                         "would enter itself (at /states/idle)\n");
}

TEST_CASE("xsn test-script and trace: virtual time beyond 2^40 ms is refused") {
  scratch s;
  const auto machine = s.write("m.scxml", scxml("<state id=\"a\"/>", ""));
  const auto script = s.write("s.json", R"({"initialConfiguration": ["a"], "events": [
    {"event": {"name": "x"}, "after": 1e300, "nextConfiguration": ["a"]}]})");
  auto r = s.run("test-script", {machine.string(), script.string()});
  CHECK(r.code == 2);
  CHECK(r.err == script.string() + ":0:0: the after values add up to more than 1099511627776 ms\n");
  const auto steps = s.write("steps.json", R"([{"advance": 1099511627776}, {"advance": 1}])");
  r = s.run("trace", {machine.string(), steps.string()});
  CHECK(r.code == 64);
  CHECK(r.err == "xsn: " + steps.string() + ": /1: the 'advance' steps add up to more than 1099511627776 ms\n");
}
