#pragma once
// Private to xsn_core: lets the session skip calls that the null datamodel ignores.
#include <xsn/runtime/datamodel.hpp>

namespace xsn::inline v0::detail {

/// True when `dm` is the null datamodel (`make_null_datamodel`), whose `set_event` does nothing.
bool is_null_datamodel(const datamodel& dm) noexcept;

/// Parses `In('id')` (or `In("id")`), the only expression the null datamodel evaluates.
bool parse_in_predicate(std::string_view s, std::string_view& id);

}  // namespace xsn::inline v0::detail
