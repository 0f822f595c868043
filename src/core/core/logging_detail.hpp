#pragma once
// Private to xsn_core: what components use to log (spdlog stays out of the public headers).
#include <xsn/core/logging.hpp>

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <string_view>

namespace xsn::inline v0::detail {

/// The logger a component constructed now logs through: the one registered under `name` in
/// spdlog's registry, else a shared silent logger (level `off`, so every `should_log` is false).
std::shared_ptr<spdlog::logger> component_logger(std::string_view name);

/// `value` as a `key=value` field value: as is when it is a non-empty run of printable
/// characters other than space, `"` and `=`; otherwise a JSON string.
std::string field(std::string_view value);

}  // namespace xsn::inline v0::detail
