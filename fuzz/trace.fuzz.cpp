// libFuzzer target: `xsn trace` steps (JSON text) run against a fixed XState machine, through the
// function the command calls (run_trace_text), at most 1000 macrosteps.
#include "fixtures.hpp"

#include "../src/cli/trace.hpp"

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto chart = xsn_fuzz::load(xsn_fuzz::xstate_machine, true);
  std::ostream null(nullptr);
  (void)xsn::cli::run_trace_text(chart, "fixture.json", nullptr, std::string_view(reinterpret_cast<const char*>(data), size),
                                 "fuzz.json", 1000, null, null);
  return 0;
}
