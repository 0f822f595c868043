#pragma once
/// \file The opt-in advanced target (`xsn::advanced`, CMake option `XSN_WITH_ADVANCED`).
///
/// Each advanced implementation derives from the same interface as its core default, so an
/// application switches with one line:
///
///     std::shared_ptr<xsn::state_store> store = std::make_shared<xsn::memory_state_store>(...);
///     // becomes
///     std::shared_ptr<xsn::state_store> store = xsn::advanced::redis_state_store::create(...);
#include <string_view>

namespace xsn::inline v0::advanced {

/// The xsn version this advanced library was built with (the same as `XSN_VERSION_STRING`).
std::string_view version() noexcept;

}  // namespace xsn::inline v0::advanced
