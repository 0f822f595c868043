// The `xsn` tool's usage and per-command help texts.
#include "help.hpp"

#include "virtual_time.hpp"

#include <string>

namespace xsn::inline v0::cli {
namespace {

static_assert(default_max_steps == 10'000, "the help texts below state the default of --max-steps");

struct command_help {
  std::string_view name;
  std::string_view synopsis;  // one or more usage lines, each starting with "xsn "
  std::string_view text;      // what it does, its options
};

constexpr std::string_view exit_codes =
    "Exit codes:\n"
    "  0   success\n"
    "  1   failure: a machine that ended in error, an event refused, --max-steps reached,\n"
    "      a test-script mismatch, no answer from a node\n"
    "  2   a document or config that does not load (every error printed as file:line:col)\n"
    "  64  bad usage\n"
    "  70  internal error\n";

constexpr command_help commands[] = {
    {"run",
     "xsn run MACHINE [--event NAME[=JSON]]... [--advance MS]... [--interactive] [--log]\n"
     "        [--verbose] [--max-steps N]\n",
     "Runs MACHINE (SCXML, or an XState v5 machine config .json) from its start and prints the\n"
     "active atomic states after each macrostep, one line, ids separated by spaces. The steps run\n"
     "in the order given:\n"
     "  --event NAME[=JSON]  sends an external event, with optional JSON data\n"
     "  --advance MS         moves virtual time by MS, then fires the delayed events that fell\n"
     "                       due, in due order; events they schedule count from the new time\n"
     "                       (XState's SimulatedClock; `xsn trace` moves time the same way)\n"
     "  --interactive        then reads stdin: 'NAME [JSON]' sends an event, '+MS' advances time\n"
     "  --log                writes <log> output to stderr\n"
     "  --verbose            prefixes each line with the virtual time and the event that caused\n"
     "                       the macrostep ('1500ms tick: green'); ends with the status and the\n"
     "                       <donedata> (SCXML) or output (XState) of a machine that is done\n"
     "  --max-steps N        stops with exit 1 after N macrosteps in all (default 10000;\n"
     "                       0: no limit), so a machine that keeps itself busy ends\n"
     "Exits 1 when the machine ends in error, an event is refused (e.g. sent after the machine\n"
     "ended) or the step limit is reached.\n"},
    {"validate", "xsn validate FILE\n",
     "Loads FILE (SCXML or XState JSON) and checks it without running it, reporting every\n"
     "error in one pass (at most 100) as file:line:col: message (exit 2): the structure, unknown\n"
     "targets and initial states, ECMAScript that does not compile (compiled, never run) and\n"
     "In() of unknown states. Warnings (stderr, exit 0): native actions only a program can bind,\n"
     "expressions under the null datamodel.\n"},
    {"test-script", "xsn test-script MACHINE SCRIPT.json [--verbose]\n",
     "Runs MACHINE against a SCION-style JSON script (initial configuration, events, expected\n"
     "configurations), as the W3C suite does. Exit 1 on the first mismatch.\n"},
    {"trace", "xsn trace MACHINE STEPS.json [--test-fixtures] [--max-steps N]\n",
     "Prints {\"value\": <XState state value>, \"status\": ...} (plus tags and output when there\n"
     "are any) after start and after each step of STEPS.json: event objects {\"type\": NAME, ...}\n"
     "and {\"advance\": MS} (virtual time as `xsn run --advance`). --test-fixtures binds guards\n"
     "yes/no, actions noop and raise and the config's fixtureActors, for differential tests\n"
     "against XState. --max-steps N: exit 1 after N macrosteps in all (default 10000; 0: no limit).\n"},
    {"serve", "xsn serve CONFIG.json [--node-id ID] [--http HOST:PORT] [--log-format text|json]\n",
     "Runs one node of a deployment that shares machines through Redis or Redis Cluster\n"
     "(docs/deployment.md). SIGTERM or SIGINT hands its partitions over, then exits 0.\n"},
    {"send",
     "xsn send (--redis HOST:PORT | --config FILE) [--prefix P] MACHINE EVENT [JSON] [--wait]\n"
     "         [--key KEY] [--timeout-ms MS]\n",
     "Adds an event to MACHINE's partition stream. --wait prints the owner's answer (exit 1 when\n"
     "none comes within --timeout-ms); --key sets the idempotency key (default: generated).\n"},
    {"cluster", "xsn cluster status (--redis HOST:PORT | --config FILE) [--prefix P] [--json]\n",
     "Prints the nodes, partitions, owners, epochs, stream lengths and pending entries.\n"},
    {"help", "xsn help [COMMAND]\n", "Prints the usage, or the help of COMMAND (as `xsn COMMAND --help`).\n"},
};

}  // namespace

int print_usage(std::ostream& os, int code) {
  os << "usage:\n";
  for (const auto& c : commands) {
    std::string_view s = c.synopsis;
    while (!s.empty()) {  // indent every line of the synopsis
      const auto nl = s.find('\n');
      os << "  " << s.substr(0, nl + 1);
      s.remove_prefix(nl + 1);
    }
  }
  os << "  xsn --version\n\n"
        "MACHINE and FILE are SCXML documents or XState v5 machine configs (.json).\n"
        "`xsn help COMMAND` or `xsn COMMAND --help` tells more.\n\n"
     << exit_codes;
  return code;
}

bool print_command_help(std::string_view command, std::ostream& os) {
  for (const auto& c : commands) {
    if (c.name != command) continue;
    os << "usage: " << c.synopsis << "\n" << c.text << "\n" << exit_codes;
    return true;
  }
  return false;
}

}  // namespace xsn::inline v0::cli
