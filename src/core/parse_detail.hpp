#pragma once
// Private to xsn_core: what the SCXML and XState parsers share around their builders.
#include <xsn/parse/scxml.hpp>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>

namespace xsn::detail {

/// Reads the whole file `p` into `out`; false when it cannot be opened.
inline bool read_file(const std::filesystem::path& p, std::string& out) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

/// Runs `build()` (returning the chart, or null) into `r`: an exception becomes an
/// `internal error` diagnostic on `file`, any error drops the chart, and the errors end up in
/// document order (line, then column; stable for equal locations).
template <class Build>
void finish_parse(parse_result& r, const std::string& file, Build&& build) {
  try {
    auto chart = build();
    if (r.errors.empty() && chart) r.chart = std::move(chart);
  } catch (const std::exception& e) {
    r.errors.push_back({file, {}, std::string("internal error: ") + e.what()});
  }
  if (!r.errors.empty()) r.chart.reset();
  std::stable_sort(r.errors.begin(), r.errors.end(), [](const diagnostic& a, const diagnostic& b) {
    return std::tie(a.loc.line, a.loc.column) < std::tie(b.loc.line, b.loc.column);
  });
}

/// Reads `path` and parses its text with `parse(text)`; a file that cannot be read is a
/// `cannot read file` diagnostic.
template <class Parse>
parse_result load_file(const std::filesystem::path& path, Parse&& parse) {
  std::string text;
  if (!read_file(path, text)) {
    parse_result r;
    r.errors.push_back({path.string(), {}, "cannot read file"});
    return r;
  }
  return parse(text);
}

}  // namespace xsn::detail
