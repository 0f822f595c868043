// libFuzzer target: a `xsn test-script` script (JSON text) run against a fixed ECMAScript chart,
// through the function the command calls (run_test_script_text).
#include "fixtures.hpp"

#include "../src/cli/test_script.hpp"

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto chart = xsn_fuzz::load(xsn_fuzz::scxml_machine, false);
  std::ostream null(nullptr);
  (void)xsn::cli::run_test_script_text(chart, "fixture.scxml", std::string_view(reinterpret_cast<const char*>(data), size),
                                       "fuzz.json", null, null, false);
  return 0;
}
