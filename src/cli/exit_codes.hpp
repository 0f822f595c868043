#pragma once
// The xsn tool's exit codes, one list for every command (`xsn help` prints what they mean).

namespace xsn::inline v0::cli {

/// A machine that ended in error, an event refused, --max-steps reached, a test-script mismatch,
/// no answer from a node.
inline constexpr int exit_failure = 1;
/// A document, script or config that does not load (every error printed as file:line:col).
inline constexpr int exit_load = 2;
/// Bad usage: an unknown command or option, a missing argument.
inline constexpr int exit_usage = 64;
/// An internal error (an exception nobody expected).
inline constexpr int exit_internal = 70;

}  // namespace xsn::inline v0::cli
