#pragma once
/// \file SCXML documents to compiled statecharts, with located errors.
#include <xsn/model/statechart.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace xsn::inline v0 {

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

/// How deep `<state>`, `<parallel>`, `<final>` and `<history>` elements may nest: a state
/// directly in `<scxml>` is at depth 1. A deeper state is an error at its `<`
/// (`states nested deeper than 1000`) and the document is not built.
inline constexpr std::size_t max_state_depth = 1000;

/// How deep any element may nest, `<scxml>` at depth 1 (room for executable content and
/// `<content>` markup inside the deepest states). A deeper element is an error at its `<`
/// (`elements nested deeper than 2000`) and the document is not built.
inline constexpr std::size_t max_element_depth = 2000;

/// The largest document `load_scxml`, `load_xstate`, `load_document` and `check_document` read
/// (64 MiB), also for `<invoke src>` at run time; a larger file, or a device that never ends, is
/// `cannot read file`.
inline constexpr std::size_t max_document_size = std::size_t{64} << 20;

/// What a `resource_resolver` gives back for one `src`.
struct resource {
  /// What became of the request.
  enum class outcome : std::uint8_t {
    found,    ///< `content` holds the bytes.
    missing,  ///< Nothing there: a `<data src>` then fails at run time with `error.execution`
              ///< (as the W3C requires), a `<script src>` is an error at its attribute.
    refused,  ///< Not allowed (outside the document's folder, not a regular file, too large):
              ///< an error at the `src` attribute, whatever the element.
  };
  outcome status = outcome::missing;  ///< What became of the request.
  std::string content;                ///< The bytes, when `found`.
  std::string reason;                 ///< Why not, otherwise; quoted in the diagnostic.
};

/// Fetches what a `src` attribute names (`<data src>`, `<script src>`), at load time.
/// `base_dir` is the document's folder (`parse_options::base_dir`); `max_size` the most bytes
/// the loader accepts (more is refused anyway, whatever the resolver returns).
using resource_resolver =
    std::function<resource(std::string_view src, const std::filesystem::path& base_dir, std::size_t max_size)>;

/// The default `resource_resolver`: a local file (`file:` and `file://` prefixes allowed) that,
/// once symbolic links and `..` are resolved, lies under `base_dir` (the current directory when
/// `base_dir` is empty) and is a regular file (not a device, FIFO or folder) of at most
/// `max_size` bytes; anything else is `refused` with the reason (other URL schemes too). A file
/// that does not exist is `missing`.
resource read_local_resource(std::string_view src, const std::filesystem::path& base_dir, std::size_t max_size);

/// How a document is loaded: where its resources come from and how large they may be.
struct parse_options {
  /// The document's folder: relative `src` attributes resolve against it, and the default
  /// resolver reads nothing outside it. `load_scxml` uses the file's folder when this is empty.
  std::filesystem::path base_dir;
  /// Fetches `src` resources; empty: `read_local_resource`. An embedding program that serves
  /// documents from elsewhere (a database, an archive) or allows no resources sets its own.
  resource_resolver resolver;
  /// The largest resource accepted, in bytes (1 MiB by default); larger is an error at the
  /// `src` attribute.
  std::size_t max_resource_size = std::size_t{1} << 20;
};

/// Parses SCXML `text`. `source_name` labels diagnostics; relative `src` attributes resolve
/// against `base_dir`, through `read_local_resource`.
parse_result parse_scxml(std::string_view text, std::string_view source_name,
                         const std::filesystem::path& base_dir = {});

/// Parses SCXML `text` with the resources, resolver and limits of `options`.
parse_result parse_scxml(std::string_view text, std::string_view source_name, const parse_options& options);

/// Reads and parses the SCXML file at `path`.
parse_result load_scxml(const std::filesystem::path& path);

/// Reads and parses the SCXML file at `path` with `options` (an empty `base_dir` is the file's folder).
parse_result load_scxml(const std::filesystem::path& path, const parse_options& options);

/// Loads a document by extension: `.json` as an XState machine (later), anything else as SCXML.
parse_result load_document(const std::filesystem::path& path);

}  // namespace xsn::inline v0
