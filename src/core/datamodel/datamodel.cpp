#include <xsn/config.hpp>
#include <xsn/runtime/datamodel.hpp>
#include <xsn/runtime/implementations.hpp>

#include "datamodel/ecmascript_check.hpp"

namespace xsn::inline v0 {

datamodel_host::~datamodel_host() = default;
datamodel::~datamodel() = default;

#if !XSN_WITH_ECMASCRIPT
std::unique_ptr<datamodel> make_ecmascript_datamodel(script_limits) { return nullptr; }
detail::syntax_checker detail::make_ecmascript_syntax_checker(script_limits) { return {}; }
#endif

std::unique_ptr<datamodel> make_datamodel(std::string_view name, script_limits limits) {
  if (name.empty() || name == "null") return make_null_datamodel();
  if (name == "ecmascript") return make_ecmascript_datamodel(limits);
  if (name == "xstate") return make_xstate_datamodel(nullptr);  // charts naming no implementations
  return nullptr;
}

}  // namespace xsn::inline v0
