#pragma once
/// \file CSS2 time values (`500ms`, `1.5s`), as SCXML's `delay` and `delayexpr` use them.
#include <chrono>
#include <string_view>

namespace xsn::inline v0::detail {

/// Parses a CSS2 time value (`500ms`, `1.5s`, `.5s`, surrounding spaces allowed); false when
/// malformed, negative or absurdly large.
bool parse_css_time(std::string_view s, std::chrono::milliseconds& out);

}  // namespace xsn::inline v0::detail
