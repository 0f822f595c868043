#pragma once
// Private to xsn_core: compiling ECMAScript without running it, for `check_chart`.
#include <xsn/runtime/datamodel.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace xsn::inline v0::detail {

/// How the ECMAScript datamodel compiles an expression before running it.
enum class script_kind : char {
  value = 'v',     ///< An expression (else statements whose completion value is the result).
  location = 'l',  ///< The left-hand side of an assignment.
  script = 's'     ///< A `<script>` body.
};

/// Compiles `text` as `kind` and never runs it: Duktape's error message (`SyntaxError: ...`), or
/// nullopt when it compiles.
using syntax_checker = std::function<std::optional<std::string>(script_kind kind, std::string_view text)>;

/// A checker on one sandboxed heap of its own, under `limits` (the datamodel's budgets apply to
/// compiling too); empty when xsn is built without ECMAScript.
syntax_checker make_ecmascript_syntax_checker(script_limits limits = {});

}  // namespace xsn::inline v0::detail
