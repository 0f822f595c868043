// Part of xsn_advanced: which build of xsn the advanced library belongs to.
#include <xsn/advanced/advanced.hpp>
#include <xsn/config.hpp>

namespace xsn::inline v0::advanced {

std::string_view version() noexcept { return XSN_VERSION_STRING; }

}  // namespace xsn::inline v0::advanced
