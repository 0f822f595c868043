#pragma once
// The `xsn` tool's usage and per-command help (`xsn help COMMAND`, `xsn COMMAND --help`).
#include <ostream>
#include <string_view>

namespace xsn::inline v0::cli {

/// Prints the usage (every command, the exit codes) to `os`; returns `code`.
int print_usage(std::ostream& os, int code);
/// Prints the help of `command` to `os`; false when there is no such command.
bool print_command_help(std::string_view command, std::ostream& os);

}  // namespace xsn::inline v0::cli
