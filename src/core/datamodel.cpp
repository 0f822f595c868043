#include <xsn/config.hpp>
#include <xsn/runtime/datamodel.hpp>

namespace xsn {

datamodel_host::~datamodel_host() = default;
datamodel::~datamodel() = default;

#if !XSN_WITH_ECMASCRIPT
std::unique_ptr<datamodel> make_ecmascript_datamodel(script_limits) { return nullptr; }
#endif

std::unique_ptr<datamodel> make_datamodel(std::string_view name, script_limits limits) {
  if (name.empty() || name == "null") return make_null_datamodel();
  if (name == "ecmascript") return make_ecmascript_datamodel(limits);
  return nullptr;
}

}  // namespace xsn
