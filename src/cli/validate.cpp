#include "validate.hpp"

#include "exit_codes.hpp"

#include <xsn/parse/check.hpp>

#include <iostream>

namespace xsn::inline v0::cli {

int cmd_validate(const std::vector<std::string>& args) {
  if (args.size() != 1 || (args[0].size() > 1 && args[0][0] == '-')) {
    if (args.size() == 1) std::cerr << "xsn validate: unknown option '" << args[0] << "'\n";
    std::cerr << "usage: xsn validate FILE\n";
    return exit_usage;
  }
  const auto result = check_document(args[0]);
  for (const auto& d : result.diagnostics) std::cerr << d.to_string() << "\n";
  if (!result) return exit_load;
  std::cout << args[0] << ": valid (" << result.chart->states.size() - 1 << " states, "
            << result.chart->transitions.size() << " transitions)\n";
  return 0;
}

}  // namespace xsn::inline v0::cli
