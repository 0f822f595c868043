#pragma once
/// \file Catch2 for xsn tests, whichever major version is installed.
///
/// Tests include this file, never Catch2 directly, so they build against Debian 12's Catch2 2.13
/// (one header, `Catch2::Catch2`) and Catch2 3 (split headers, `Catch2::Catch2WithMain`) alike.
/// Write tests in the v3 spelling (`Catch::Approx`, `Catch::Matchers::ContainsSubstring`); the
/// v2 branch below provides those names. tests/CMakeLists.txt defines `XSN_CATCH2_MAJOR` from the
/// package it found, so a machine with both versions installed cannot mix them up.

#if !defined(XSN_CATCH2_MAJOR)
#  if __has_include(<catch2/catch_test_macros.hpp>)
#    define XSN_CATCH2_MAJOR 3
#  elif __has_include(<catch2/catch.hpp>)
#    define XSN_CATCH2_MAJOR 2
#  else
#    error "Catch2 not found: install it (Debian: apt-get install catch2)"
#  endif
#endif

#if XSN_CATCH2_MAJOR >= 3
#  include <catch2/catch_approx.hpp>
#  include <catch2/catch_template_test_macros.hpp>
#  include <catch2/catch_test_macros.hpp>
#  include <catch2/generators/catch_generators_all.hpp>
#  include <catch2/matchers/catch_matchers_all.hpp>
#else
#  include <catch2/catch.hpp>

#  include <string>

namespace Catch {
/// v3 name of v2's `Catch::Detail::Approx`.
using Detail::Approx;
namespace Matchers {
/// v3 name of v2's string `Contains` matcher.
inline StdString::ContainsMatcher ContainsSubstring(const std::string& str,
                                                    CaseSensitive::Choice cs = CaseSensitive::Yes) {
  return Contains(str, cs);
}
}  // namespace Matchers
}  // namespace Catch
#endif
