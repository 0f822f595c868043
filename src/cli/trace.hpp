#pragma once
// `xsn trace MACHINE STEPS.json [--test-fixtures]`: the configuration after start and after each
// step as JSON Lines, for differential tests against XState.
#include <ostream>
#include <string>
#include <vector>

namespace xsn::cli {

/// Runs the `trace` command; returns the process exit code.
int run_trace(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace xsn::cli
