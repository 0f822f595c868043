#pragma once
// `xsn validate FILE`: loads a document and checks what it can in one pass (see xsn/parse/check.hpp).
#include <string>
#include <vector>

namespace xsn::inline v0::cli {

/// Runs `xsn validate` with its arguments (the command name excluded). Prints every diagnostic
/// to stderr (`file:line:col: message`, warnings as `file:line:col: warning: message`) and
/// `FILE: valid (...)` to stdout when there is no error. Returns 0 when valid (warnings
/// allowed), 2 when the document has errors or cannot be read, 64 on bad usage.
int cmd_validate(const std::vector<std::string>& args);

}  // namespace xsn::inline v0::cli
