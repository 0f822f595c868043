#pragma once
/// \file SCXML documents to compiled statecharts, with located errors.
#include <xsn/model/statechart.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace xsn {

/// A problem found in a document, located at `file:line:col`.
struct diagnostic {
  std::string file;     ///< Document name as given to the parser.
  source_location loc;  ///< Where; 0:0 when the whole document is concerned.
  std::string message;  ///< What is wrong.
  /// `file:line:col: message`.
  std::string to_string() const;
};

/// The outcome of parsing: a chart, or the diagnostics that prevented one.
struct parse_result {
  std::shared_ptr<const statechart> chart;  ///< Null when `errors` is not empty.
  std::vector<diagnostic> errors;            ///< Every error found, in document order.
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
