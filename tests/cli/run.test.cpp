// The `xsn` tool as a user runs it: help and usage, `run` (verbose lines, exit codes, the step
// limit), and virtual time moved by the same rule in `run` and `trace`.
#include "catch.hpp"
#include "process.hpp"

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

namespace {

using xsn_test::run_command;

/// Writes `text` to `name` in `dir`; returns the file's path.
std::string write(const xsn_test::temp_dir& dir, const std::string& name, const std::string& text) {
  const auto path = (dir.path / name).string();
  std::ofstream(path) << text;
  return path;
}

/// How many lines `text` holds.
std::size_t lines(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

constexpr const char* self_send_scxml = R"XML(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" initial="a">
  <state id="a"><onentry><send event="again" delay="0s"/></onentry><transition event="again" target="a"/></state>
</scxml>)XML";

// An `after` that re-enters its state, and a way out.
constexpr const char* ticking_json = R"({"id": "m", "initial": "a", "output": {"x": 1},
  "states": {"a": {"after": {"100": "a"}, "on": {"GO": "b"}}, "b": {"type": "final"}}})";

constexpr const char* done_scxml = R"XML(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="a">
  <state id="a"><transition event="t" target="end"/><onentry><send event="t" delay="50ms"/></onentry></state>
  <final id="end"><donedata><param name="answer" expr="42"/></donedata></final>
</scxml>)XML";

}  // namespace

TEST_CASE("xsn help: the usage lists every command and the exit codes") {
  auto [code, out] = run_command({XSN_BINARY, "help"});
  CHECK(code == 0);
  for (const char* cmd : {"xsn run ", "xsn validate ", "xsn test-script ", "xsn trace ", "xsn serve ", "xsn send ",
                          "xsn cluster status ", "xsn help ", "xsn --version"}) {
    INFO(cmd);
    CHECK(out.find(cmd) != std::string::npos);
  }
  for (const char* code_line : {"Exit codes:", "  0 ", "  1 ", "  2 ", "  64 ", "  70 "}) CHECK(out.find(code_line) != std::string::npos);
  CHECK(run_command({XSN_BINARY}).first == 64);
  CHECK(run_command({XSN_BINARY, "frobnicate"}).first == 64);
}

TEST_CASE("xsn help: help COMMAND and COMMAND --help print the command's help") {
  xsn_test::temp_dir dir("xsn-cli-help");
  const auto doc = write(dir, "m.scxml", self_send_scxml);
  auto [c1, help] = run_command({XSN_BINARY, "help", "run"});
  CHECK(c1 == 0);
  CHECK(help.find("--max-steps N") != std::string::npos);
  CHECK(help.find("default 10000") != std::string::npos);
  // --help anywhere, even after the file: not read as a file name.
  auto [c2, same] = run_command({XSN_BINARY, "run", doc, "--help"});
  CHECK(c2 == 0);
  CHECK(same == help);
  CHECK(run_command({XSN_BINARY, "trace", "-h"}).first == 0);
  CHECK(run_command({XSN_BINARY, "help", "nope"}).first == 64);
}

TEST_CASE("xsn run: --verbose prints the virtual time and the event of each macrostep and the donedata") {
  xsn_test::temp_dir dir("xsn-cli-verbose");
  const auto doc = write(dir, "done.scxml", done_scxml);
  auto [code, out] = run_command({XSN_BINARY, "run", doc, "--verbose", "--advance", "70"}, "2>/dev/null");
  CHECK(code == 0);
  CHECK(out == "0ms (start): a\n70ms t: end\nstatus: done\ndonedata: {\"answer\":42}\n");
  // Without --verbose: the states only, as before.
  CHECK(run_command({XSN_BINARY, "run", doc, "--advance", "70"}, "2>/dev/null").second == "a\nend\n");
}

TEST_CASE("xsn run: --verbose ends with an XState machine's output") {
  xsn_test::temp_dir dir("xsn-cli-output");
  const auto doc = write(dir, "m.json", ticking_json);
  auto [code, out] = run_command({XSN_BINARY, "run", doc, "--verbose", "--event", "GO"}, "2>/dev/null");
  CHECK(code == 0);
  CHECK(out == "0ms (start): m.a\n0ms GO: m.b\nstatus: done\noutput: {\"x\":1}\n");
}

TEST_CASE("xsn run: exits 1 when the machine ends in error or an event is refused") {
  xsn_test::temp_dir dir("xsn-cli-errors");
  const auto unbound = write(dir, "unbound.json",
                             R"({"id": "m", "initial": "a", "states": {"a": {"entry": "start_motor"}}})");
  auto [c1, why] = run_command({XSN_BINARY, "run", unbound}, "2>&1 >/dev/null");
  CHECK(c1 == 1);
  CHECK(why.find("start_motor") != std::string::npos);
  const auto done = write(dir, "done.json", ticking_json);
  auto [c2, refused] = run_command({XSN_BINARY, "run", done, "--event", "GO", "--event", "GO"}, "2>&1 >/dev/null");
  CHECK(c2 == 1);
  CHECK(refused.find("event 'GO' refused") != std::string::npos);
}

TEST_CASE("xsn run: run and trace stop after --max-steps macrosteps of a machine that keeps itself busy") {
  xsn_test::temp_dir dir("xsn-cli-steps");
  const auto doc = write(dir, "loop.scxml", self_send_scxml);
  auto [c1, out] = run_command({XSN_BINARY, "run", doc, "--max-steps", "5"}, "2>/dev/null");
  CHECK(c1 == 1);
  CHECK(out == "a\na\na\na\na\n");
  auto [c2, err] = run_command({XSN_BINARY, "run", doc}, "2>&1 >/dev/null");
  CHECK(c2 == 1);  // the default limit
  CHECK(err.find("stopped after 10000 macrosteps") != std::string::npos);
  const auto steps = write(dir, "steps.json", "[]");
  auto [c3, traced] = run_command({XSN_BINARY, "trace", doc, steps, "--max-steps", "3"}, "2>/dev/null");
  CHECK(c3 == 1);
  CHECK(traced.empty());  // the start alone takes more than 3 macrosteps: nothing settled to print
  CHECK(run_command({XSN_BINARY, "run", doc, "--max-steps", "-1"}).first == 64);
  CHECK(run_command({XSN_BINARY, "run", doc, "--max-steps", "many"}).first == 64);
}

TEST_CASE("xsn run: run and trace move virtual time by the same rule") {
  xsn_test::temp_dir dir("xsn-cli-time");
  const auto doc = write(dir, "tick.json", ticking_json);
  // A large advance fires the re-entering `after` once (timers set meanwhile count from the new
  // time), in both commands.
  auto [c1, out] = run_command({XSN_BINARY, "run", doc, "--advance", "1000000", "--event", "GO"}, "2>/dev/null");
  CHECK(c1 == 0);
  CHECK(out == "m.a\nm.a\nm.b\n");
  const auto steps = write(dir, "steps.json", R"([{"advance": 1000000}, {"type": "GO"}])");
  auto [c2, traced] = run_command({XSN_BINARY, "trace", doc, steps}, "2>/dev/null");
  CHECK(c2 == 0);
  CHECK(lines(traced) == 3);
  CHECK(traced.find("\"value\":\"b\",\"status\":\"done\"") != std::string::npos);
}

TEST_CASE("xsn run: refuses malformed arguments with exit 64") {
  xsn_test::temp_dir dir("xsn-cli-args");
  const auto doc = write(dir, "m.scxml", self_send_scxml);
  for (const std::vector<std::string>& extra : std::vector<std::vector<std::string>>{
           {"--advance", "soon"}, {"--advance", "-5"}, {"--event", "=1"}, {"--event", "x={bad"},
           {"--event"}, {"--frobnicate"}, {"second-file"}}) {
    std::vector<std::string> args{XSN_BINARY, "run", doc};
    args.insert(args.end(), extra.begin(), extra.end());
    INFO(extra.front());
    CHECK(run_command(args).first == 64);
  }
  CHECK(run_command({XSN_BINARY, "run"}).first == 64);
  CHECK(run_command({XSN_BINARY, "run", (dir.path / "missing.scxml").string()}).first == 2);
}

TEST_CASE("xsn run: --interactive reads events and time from stdin") {
  xsn_test::temp_dir dir("xsn-cli-interactive");
  const auto doc = write(dir, "tick.json", ticking_json);
  const auto input = write(dir, "input.txt", "+250\nnot json {\nGO\n");
  auto [code, out] = run_command({XSN_BINARY, "run", doc, "--interactive", "--verbose"}, "< '" + input + "' 2>/dev/null");
  CHECK(code == 0);
  CHECK(out == "0ms (start): m.a\n250ms xstate.after.100.m.a: m.a\n250ms GO: m.b\nstatus: done\noutput: {\"x\":1}\n");
}

TEST_CASE("xsn run: errors of the machine are printed on stderr and ignored events with --verbose") {
  xsn_test::temp_dir dir("xsn-cli-diagnostics");
  const auto doc = write(dir, "bad.scxml", R"XML(<scxml xmlns="http://www.w3.org/2005/07/scxml" xmlns:xsn="http://xsn.dev/scxml"
    version="1.0" datamodel="ecmascript" initial="a">
  <state id="a"><onentry><xsn:action name="start_motor"/></onentry><transition event="go" cond="x ==" target="b"/></state>
  <state id="b"/>
</scxml>)XML");
  auto [c1, err] = run_command({XSN_BINARY, "run", doc, "--event", "go", "--event", "other"}, "2>&1 >/dev/null");
  CHECK(c1 == 0);  // errors inside an SCXML machine do not end it
  CHECK(err.find("start_motor") != std::string::npos);
  CHECK(err.find("guard_error in state 'a'") != std::string::npos);
  CHECK(err.find("`x ==`") != std::string::npos);
  CHECK(err.find("ignored") == std::string::npos);
  auto [c2, verbose] = run_command({XSN_BINARY, "run", doc, "--event", "go", "--event", "other", "--verbose"},
                                   "2>&1 >/dev/null");
  CHECK(c2 == 0);
  CHECK(verbose.find("event 'go' ignored: guard_failed") != std::string::npos);
  CHECK(verbose.find("event 'other' ignored: no_transition") != std::string::npos);
}
