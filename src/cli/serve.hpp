#pragma once
// `xsn serve`, `xsn send`, `xsn cluster status` (built with the distributed part).
#include <string>
#include <vector>

namespace xsn::inline v0::cli {
int cmd_serve(const std::vector<std::string>& args);
int cmd_send(const std::vector<std::string>& args);
int cmd_cluster(const std::vector<std::string>& args);
}  // namespace xsn::inline v0::cli
