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
#include <vector>

namespace xsn::inline v0::detail {

/// Errors a parser collects at most; the report keeps the first `max_parse_errors` of them in
/// document order, but a parser must not grow without bound on a document made of mistakes.
inline constexpr std::size_t max_collected_errors = 10 * max_parse_errors;

/// Reads the whole file `p` into `out`; false when it cannot be opened or holds more than
/// `max_document_size` bytes (a device such as /dev/zero never ends: it is cut there).
inline bool read_file(const std::filesystem::path& p, std::string& out) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return false;
  out.clear();
  char chunk[65536];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    out.append(chunk, static_cast<std::size_t>(in.gcount()));
    if (out.size() > max_document_size) return false;
  }
  return true;
}

/// Puts `ds` in document order (line, then column; stable for equal locations) and keeps the
/// first `max_parse_errors`, followed by a `too many errors` one when there were more.
inline void sort_and_bound(std::vector<diagnostic>& ds, const std::string& file) {
  std::stable_sort(ds.begin(), ds.end(), [](const diagnostic& a, const diagnostic& b) {
    return std::tie(a.loc.line, a.loc.column) < std::tie(b.loc.line, b.loc.column);
  });
  if (ds.size() <= max_parse_errors) return;
  const auto at = ds[max_parse_errors].loc;  // the first one left out
  ds.resize(max_parse_errors);
  ds.push_back({file, at, "too many errors (the first " + std::to_string(max_parse_errors) +
                              " are shown); fix them and check again"});
}

/// Runs `build()` (returning the chart, or null) into `r`: an exception becomes an
/// `internal error` diagnostic on `file`, any error drops the chart, and the errors end up in
/// document order (line, then column; stable for equal locations), the first `max_parse_errors`
/// of them followed by a `too many errors` one when there were more.
template <class Build>
void finish_parse(parse_result& r, const std::string& file, Build&& build) {
  try {
    auto chart = build();
    if (r.errors.empty() && chart) r.chart = std::move(chart);
  } catch (const std::exception& e) {
    r.errors.push_back({file, {}, std::string("internal error: ") + e.what()});
  }
  if (!r.errors.empty()) r.chart.reset();
  sort_and_bound(r.errors, file);
}

/// `parse_scxml`, also giving the chart as far as it was built when the document has errors
/// (`*partial`, when not null; null when no `<scxml>` root was found). Its expressions and state
/// ids are there, its targets may not all be: enough for checks of expressions.
parse_result parse_scxml_partial(std::string_view text, std::string_view source_name,
                                 const parse_options& options,
                                 std::shared_ptr<const statechart>* partial);

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

}  // namespace xsn::inline v0::detail
