#pragma once
// Private to xsn_core: lets the session skip calls that the null datamodel ignores.
#include <xsn/runtime/datamodel.hpp>

namespace xsn::detail {

/// True when `dm` is the null datamodel (`make_null_datamodel`), whose `set_event` does nothing.
bool is_null_datamodel(const datamodel& dm) noexcept;

}  // namespace xsn::detail
