#pragma once
// `xsn test-script`: runs a machine against a JSON test script of the SCXML test framework.
#include <filesystem>
#include <iosfwd>

namespace xsn::cli {

/// Exit codes of `xsn test-script`.
enum test_script_status { script_passed = 0, script_mismatch = 1, script_load_error = 2 };

/// Runs `machine` against `script`, writing mismatches and errors to `err`.
int run_test_script(const std::filesystem::path& machine, const std::filesystem::path& script,
                    std::ostream& out, std::ostream& err, bool verbose);

}  // namespace xsn::cli
