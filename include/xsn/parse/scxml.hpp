#pragma once
/// \file SCXML documents to compiled statecharts, with located errors.
#include <xsn/model/statechart.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace xsn {

/// How bad a diagnostic is: an error stops a document from loading (or `xsn validate` from
/// passing it); a warning points at something that may fail at run time.
enum class severity : std::uint8_t { error, warning };

/// A problem found in a document, located at `file:line:col`.
struct diagnostic {
  std::string file;     ///< Document name as given to the parser.
  source_location loc;  ///< Where; 0:0 when the whole document is concerned.
  std::string message;  ///< What is wrong.
  severity level = severity::error;  ///< Parsers report errors only; `check_document` also warnings.
  /// `file:line:col: message`, or `file:line:col: warning: message` for a warning.
  std::string to_string() const;
};

/// Errors a loader reports at most for one document; when there are more, a last diagnostic
/// says `too many errors`.
inline constexpr std::size_t max_parse_errors = 100;

/// The outcome of parsing: a chart, or the diagnostics that prevented one.
struct parse_result {
  std::shared_ptr<const statechart> chart;  ///< Null when `errors` is not empty.
  /// Every error found in one pass, in document order (at most `max_parse_errors`, then a
  /// `too many errors` one). An XML syntax error ends the pass: nothing after it is checked.
  std::vector<diagnostic> errors;
  /// True when a chart was built.
  explicit operator bool() const noexcept { return chart != nullptr; }
};

/// Parses SCXML `text`. `source_name` labels diagnostics; relative `src` attributes resolve
/// against `base_dir`.
parse_result parse_scxml(std::string_view text, std::string_view source_name,
                         const std::filesystem::path& base_dir = {});

/// Reads and parses the SCXML file at `path`.
parse_result load_scxml(const std::filesystem::path& path);

/// Loads a document by extension: `.json` as an XState machine (later), anything else as SCXML.
parse_result load_document(const std::filesystem::path& path);

}  // namespace xsn
