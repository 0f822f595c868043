// The `xsn` command-line tool: run, validate and test statechart documents.
#include "test_script.hpp"
#include "validate.hpp"
#if XSN_HAVE_SERVE
#include "serve.hpp"
#endif
#include "trace.hpp"

#include <xsn/config.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr int exit_usage = 64;
constexpr int exit_load = 2;

int usage(std::ostream& os, int code) {
  os << "usage:\n"
        "  xsn run FILE [--event NAME[=JSON]]... [--advance MS]... [--interactive] [--log]\n"
        "  xsn validate FILE\n"
        "  xsn test-script MACHINE SCRIPT.json [--verbose]\n"
        "  xsn trace MACHINE STEPS.json [--test-fixtures]\n"
        "  xsn serve CONFIG.json [--node-id ID] [--http HOST:PORT] [--log-format text|json]\n"
        "  xsn send (--redis HOST:PORT | --config FILE) [--prefix P] MACHINE EVENT [JSON] [--wait]\n"
        "  xsn cluster status (--redis HOST:PORT | --config FILE) [--prefix P] [--json]\n"
        "  xsn --version\n"
        "\n"
        "run: prints the active atomic states after each macrostep, one line, ids separated by\n"
        "spaces. Time is virtual: --advance MS moves the clock and fires due delayed events.\n"
        "--interactive reads lines from stdin: 'NAME [JSON]' sends an event, '+MS' advances time.\n"
        "MACHINE is SCXML or an XState v5 machine config (.json).\n"
        "serve: one node of a deployment sharing machines through Redis (docs/deployment.md);\n"
        "send: adds an event to a machine's partition stream (--wait: prints the owner's answer);\n"
        "cluster status: nodes, partitions, owners, epochs, stream lengths, pending entries.\n"
        "Exit codes: 0 success, 1 failure (a machine error, no answer), 2 a document or config\n"
        "that does not load, 64 bad usage, 70 internal error.\n"
        "trace: prints {\"value\": <XState state value>, \"status\": ...} after start and after each\n"
        "step of STEPS.json (event objects {\"type\": NAME, ...} and {\"advance\": MS}).\n";
  return code;
}

/// Parses `NAME[=JSON]`; false with a message when the JSON part is malformed.
bool parse_event_arg(const std::string& arg, xsn::event& ev, std::string& error) {
  auto eq = arg.find('=');
  ev = xsn::event(arg.substr(0, eq));
  if (ev.name.empty()) {
    error = "empty event name";
    return false;
  }
  if (eq == std::string::npos) return true;
  boost::system::error_code ec;
  ev.data = boost::json::parse(arg.substr(eq + 1), ec);
  if (ec) {
    error = "invalid JSON data for event '" + ev.name + "': " + ec.message();
    return false;
  }
  return true;
}

struct runner {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::unique_ptr<xsn::session> s;

  void settle() {
    ioc.restart();
    ioc.poll();
  }
  void advance(std::int64_t ms) {
    auto target = clk.now() + std::chrono::milliseconds(ms);
    while (clk.fire_next(target)) settle();
    clk.advance_to(target);
  }
  void send(xsn::event ev) {
    if (auto ec = s->send(std::move(ev))) std::cerr << "xsn: event not accepted: " << ec.message() << "\n";
    settle();
  }
};

int cmd_run(const std::vector<std::string>& args) {
  if (args.empty()) return usage(std::cerr, exit_usage);
  auto loaded = xsn::load_document(args[0]);
  if (!loaded) {
    for (const auto& d : loaded.errors) std::cerr << d.to_string() << "\n";
    return exit_load;
  }
  bool interactive = false, log = false;
  struct step { bool is_event; xsn::event ev; std::int64_t ms; };
  std::vector<step> steps;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--interactive") interactive = true;
    else if (a == "--log") log = true;
    else if ((a == "--event" || a == "--advance") && i + 1 < args.size()) {
      if (a == "--event") {
        step st{true, {}, 0};
        std::string err;
        if (!parse_event_arg(args[++i], st.ev, err)) {
          std::cerr << "xsn: " << err << "\n";
          return exit_usage;
        }
        steps.push_back(std::move(st));
      } else {
        try {
          steps.push_back({false, {}, std::stoll(args[++i])});
        } catch (const std::exception&) {
          std::cerr << "xsn: --advance needs a number of milliseconds\n";
          return exit_usage;
        }
      }
    } else {
      std::cerr << "xsn: unknown or incomplete argument '" << a << "'\n";
      return usage(std::cerr, exit_usage);
    }
  }
  runner r;
  xsn::session_options opts;
  opts.on_macrostep = [](xsn::session& s) {
    std::string line;
    for (const auto& id : s.active_atomic_states()) line += (line.empty() ? "" : " ") + id;
    std::cout << line << std::endl;
  };
  opts.on_log = [log](std::string_view label, std::string_view msg) {
    if (log) std::cerr << "log: " << label << (label.empty() ? "" : ": ") << msg << "\n";
  };
  r.s = std::make_unique<xsn::session>(loaded.chart, r.ioc.get_executor(), r.clk, std::move(opts));
  r.s->start();
  r.settle();
  for (auto& st : steps) {
    if (st.is_event) r.send(std::move(st.ev));
    else r.advance(st.ms);
  }
  if (interactive) {
    std::string line;
    while (r.s->running() && std::getline(std::cin, line)) {
      if (line.empty()) continue;
      if (line[0] == '+') {
        try {
          r.advance(std::stoll(line.substr(1)));
        } catch (const std::exception&) {
          std::cerr << "xsn: '+MS' needs a number\n";
        }
        continue;
      }
      auto sp = line.find(' ');
      std::string arg = sp == std::string::npos ? line : line.substr(0, sp) + "=" + line.substr(sp + 1);
      xsn::event ev;
      std::string err;
      if (!parse_event_arg(arg, ev, err)) {
        std::cerr << "xsn: " << err << "\n";
        continue;
      }
      r.send(std::move(ev));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage(std::cerr, exit_usage);
  auto cmd = args.front();
  args.erase(args.begin());
  try {
    if (cmd == "run") return cmd_run(args);
    if (cmd == "validate") return xsn::cli::cmd_validate(args);
    if (cmd == "trace") return xsn::cli::run_trace(args, std::cout, std::cerr);
    if (cmd == "test-script") {
      bool verbose = std::find(args.begin(), args.end(), "--verbose") != args.end();
      args.erase(std::remove(args.begin(), args.end(), "--verbose"), args.end());
      if (args.size() != 2) return usage(std::cerr, exit_usage);
      return xsn::cli::run_test_script(args[0], args[1], std::cout, std::cerr, verbose);
    }
#if XSN_HAVE_SERVE
    if (cmd == "serve") return xsn::cli::cmd_serve(args);
    if (cmd == "send") return xsn::cli::cmd_send(args);
    if (cmd == "cluster") return xsn::cli::cmd_cluster(args);
#endif
    if (cmd == "--version") {
      std::cout << "xsn " << XSN_VERSION_STRING << "\n";
      return 0;
    }
    if (cmd == "--help" || cmd == "-h" || cmd == "help") return usage(std::cout, 0);
  } catch (const std::exception& e) {
    std::cerr << "xsn: internal error: " << e.what() << "\n";
    return 70;
  }
  std::cerr << "xsn: unknown command '" << cmd << "'\n";
  return usage(std::cerr, exit_usage);
}
