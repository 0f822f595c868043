#pragma once
// `xsn test-script`: runs a machine against a JSON test script of the SCXML test framework.
#include <xsn/model/statechart.hpp>

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <string_view>

namespace xsn::inline v0::cli {

/// Exit codes of `xsn test-script`.
enum test_script_status { script_passed = 0, script_mismatch = 1, script_load_error = 2 };

/// Runs `machine` against `script`, writing mismatches and errors to `err`.
int run_test_script(const std::filesystem::path& machine, const std::filesystem::path& script,
                    std::ostream& out, std::ostream& err, bool verbose);

/// `run_test_script` on a loaded `chart` and the text of a script (what the fuzzer calls):
/// `machine_name` and `script_name` label the messages.
int run_test_script_text(std::shared_ptr<const statechart> chart, std::string_view machine_name,
                         std::string_view script_text, std::string_view script_name, std::ostream& out,
                         std::ostream& err, bool verbose);

}  // namespace xsn::inline v0::cli
