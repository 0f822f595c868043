// The smallest user of xsn::core (the packaging test that hides hiredis and libnuma builds only
// this one, to stay cheap): its headers, xsn/config.hpp, and linking the static library.
#include <xsn/config.hpp>
#include <xsn/core/errors.hpp>

#include <cstdio>
#include <string>

int main() {
  const std::string text = xsn::make_error_code(xsn::errc::store_closed).message();
  if (text.empty() || XSN_VERSION_STRING[0] == '\0') return 1;
  std::printf("xsn %s: %s\n", XSN_VERSION_STRING, text.c_str());
  return 0;
}
