// libFuzzer target: SCXML text -> parse_scxml (with a resolver that never touches the file system)
// -> check_chart (ECMAScript compiled by Duktape, never run) for the documents that load.
#include <xsn/parse/check.hpp>
#include <xsn/parse/scxml.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  xsn::parse_options options;
  options.base_dir = "/nonexistent";
  options.max_resource_size = 4096;
  options.resolver = [](std::string_view src, const std::filesystem::path&, std::size_t) {
    if (src == "missing.json") return xsn::resource{};
    if (src == "refused.js") return xsn::resource{xsn::resource::outcome::refused, {}, "no"};
    return xsn::resource{xsn::resource::outcome::found, std::string(src.substr(0, 64)), {}};
  };
  auto r = xsn::parse_scxml(text, "fuzz.scxml", options);
  if (r.chart) (void)xsn::check_chart(*r.chart);
  return 0;
}
