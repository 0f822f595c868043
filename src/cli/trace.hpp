#pragma once
// `xsn trace MACHINE STEPS.json [--test-fixtures]`: the configuration after start and after each
// step as JSON Lines, for differential tests against XState.
#include <xsn/model/statechart.hpp>
#include <xsn/core/value.hpp>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace xsn::inline v0::cli {

/// Runs the `trace` command; returns the process exit code.
int run_trace(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

/// `run_trace` on a loaded `chart` and the text of the steps (what the fuzzer calls):
/// `fixture_config` is the machine's JSON for `--test-fixtures` (null: without), the names label
/// the messages. Returns the exit code `run_trace` would.
int run_trace_text(std::shared_ptr<const statechart> chart, const std::string& machine_name,
                   const value* fixture_config, std::string_view steps_text, const std::string& steps_name,
                   std::uint64_t max_steps, std::ostream& out, std::ostream& err);

}  // namespace xsn::inline v0::cli
