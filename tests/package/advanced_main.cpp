// A consumer of xsn::advanced found with find_package(xsn COMPONENTS advanced).
#include <xsn/advanced/advanced.hpp>
#include <xsn/config.hpp>

#include <cstdio>

int main() {
  static_assert(XSN_WITH_ADVANCED == 1, "xsn::advanced found but config.hpp says it is not built");
  if (xsn::advanced::version() != XSN_VERSION_STRING) {
    std::puts("xsn::advanced reports another version than its headers");
    return 1;
  }
  return 0;
}
