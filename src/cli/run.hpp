#pragma once
// `xsn run MACHINE [--event NAME[=JSON]]... [--advance MS]... [--interactive] [--log] [--verbose]
// [--max-steps N]`: runs a machine on virtual time and prints its configuration after each
// macrostep.
#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace xsn::inline v0::cli {

/// Runs the `run` command (lines read from `in` with `--interactive`); returns the exit code:
/// 0, 1 (the machine ended in error, an event was refused, or `--max-steps` was reached),
/// 2 (the document does not load) or 64 (bad usage).
int run_machine(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace xsn::inline v0::cli
