#pragma once
// Numbered names for tests and benchmarks (`m7`, `c12`).
#include <string>

namespace xsn_test {

/// `prefix` followed by `n`, built by appending: GCC 12 warns, wrongly, about
/// `"x" + std::to_string(n)` once inlined (-Wrestrict).
inline std::string named(std::string prefix, long long n) { return prefix.append(std::to_string(n)); }

}  // namespace xsn_test
