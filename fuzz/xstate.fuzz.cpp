// libFuzzer target: an XState machine config (JSON text) -> parse_xstate.
#include <xsn/parse/xstate.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)xsn::parse_xstate(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  return 0;
}
