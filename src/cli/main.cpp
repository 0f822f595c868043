// The `xsn` command-line tool: run, validate and test statechart documents.
#include "help.hpp"
#include "exit_codes.hpp"
#include "run.hpp"
#include "test_script.hpp"
#include "validate.hpp"
#if XSN_HAVE_SERVE
#include "serve.hpp"
#endif
#include "trace.hpp"

#include <xsn/config.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/runtime/session.hpp>

#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

using xsn::cli::exit_usage;

int usage(std::ostream& os, int code) { return xsn::cli::print_usage(os, code); }

/// True when `args` asks for help (`--help` or `-h` anywhere).
bool wants_help(const std::vector<std::string>& args) {
  return std::any_of(args.begin(), args.end(), [](const std::string& a) { return a == "--help" || a == "-h"; });
}

/// `xsn help [COMMAND]`.
int cmd_help(const std::vector<std::string>& args) {
  if (args.empty()) return usage(std::cout, 0);
  if (xsn::cli::print_command_help(args[0], std::cout)) return 0;
  std::cerr << "xsn: no command '" << args[0] << "'\n";
  return usage(std::cerr, exit_usage);
}

/// `xsn test-script [--verbose] MACHINE SCRIPT`.
int cmd_test_script(std::vector<std::string> args) {
  bool verbose = std::find(args.begin(), args.end(), "--verbose") != args.end();
  args.erase(std::remove(args.begin(), args.end(), "--verbose"), args.end());
  if (args.size() != 2) return usage(std::cerr, exit_usage);
  return xsn::cli::run_test_script(args[0], args[1], std::cout, std::cerr, verbose);
}

/// Runs command `cmd`; std::nullopt when there is no such command.
std::optional<int> run_command(const std::string& cmd, const std::vector<std::string>& args) {
  if (cmd == "run") return xsn::cli::run_machine(args, std::cin, std::cout, std::cerr);
  if (cmd == "validate") return xsn::cli::cmd_validate(args);
  if (cmd == "trace") return xsn::cli::run_trace(args, std::cout, std::cerr);
  if (cmd == "test-script") return cmd_test_script(args);
#if XSN_HAVE_SERVE
  if (cmd == "serve") return xsn::cli::cmd_serve(args);
  if (cmd == "send") return xsn::cli::cmd_send(args);
  if (cmd == "cluster") return xsn::cli::cmd_cluster(args);
#endif
  if (cmd == "--version") {
    std::cout << "xsn " << XSN_VERSION_STRING << "\n";
    return 0;
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage(std::cerr, exit_usage);
  auto cmd = args.front();
  args.erase(args.begin());
  if (cmd == "help" || cmd == "--help" || cmd == "-h") return cmd_help(args);
  if (wants_help(args)) {
    if (xsn::cli::print_command_help(cmd, std::cout)) return 0;
    std::cerr << "xsn: unknown command '" << cmd << "'\n";
    return usage(std::cerr, exit_usage);
  }
  try {
    if (auto code = run_command(cmd, args)) return *code;
  } catch (const std::exception& e) {
    std::cerr << "xsn: internal error: " << e.what() << "\n";
    return xsn::cli::exit_internal;
  }
  std::cerr << "xsn: unknown command '" << cmd << "'\n";
  return usage(std::cerr, exit_usage);
}
