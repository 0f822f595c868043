#pragma once
/// \file Checks beyond loading, in one pass: what `xsn validate` reports.
#include <xsn/model/statechart.hpp>
#include <xsn/parse/scxml.hpp>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

namespace xsn::inline v0 {

/// What `check_document` found: the chart when the document loads, and every diagnostic.
struct check_result {
  std::shared_ptr<const statechart> chart;  ///< Null when the document does not load.
  std::vector<diagnostic> diagnostics;       ///< Errors and warnings, in document order.
  /// The number of diagnostics that are errors.
  std::size_t errors() const noexcept;
  /// True when the document loads and no diagnostic is an error (warnings allowed).
  explicit operator bool() const noexcept { return chart != nullptr && errors() == 0; }
};

/**
 * Checks an SCXML chart further than its loader does, without running anything:
 * - ECMAScript (`datamodel="ecmascript"`): every expression, location and `<script>` body is
 *   compiled with Duktape as the datamodel would compile it, and never run; a syntax error is an
 *   error at the attribute (or, for a `<script>`, the element) naming it.
 * - `In('id')` / `In("id")` with a literal id that is not a state of the chart is an error.
 * - Null datamodel (no `datamodel` attribute): a warning for every expression other than an
 *   `In()` condition, and for `<data>` and `<script>`, which would fail at run time.
 * - A warning for each native action name (`<xsn:action name>`), which only a program can bind
 *   (`session_options::actions`).
 * Inline charts (`<content><scxml>`) are checked by their own datamodel. XState charts have no
 * such expressions: the result is empty. Diagnostics are in document order.
 */
std::vector<diagnostic> check_chart(const statechart& chart);

/**
 * Parses SCXML `text` as `parse_scxml` does and checks it as `check_chart` does. The expressions
 * are checked even when the document has other errors (as far as it could be read), so that one
 * run reports everything it can.
 */
check_result check_scxml(std::string_view text, std::string_view source_name,
                         const std::filesystem::path& base_dir = {});

/// Reads the document at `path` and checks it: `.json` as an XState machine config (its loader's
/// errors), anything else with `check_scxml`. A file that cannot be read is one error.
check_result check_document(const std::filesystem::path& path);

}  // namespace xsn::inline v0
