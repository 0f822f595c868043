#pragma once
// Running a program the way a user does, for tests of the `xsn` tool: its exit status and its
// output, and a private temporary folder for the files it reads.
#include "catch.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace xsn_test {

/// `args` quoted for /bin/sh (each in single quotes).
inline std::string shell_quote(const std::vector<std::string>& args) {
  std::string cmd;
  for (const auto& a : args) {
    cmd += '\'';
    for (char c : a) cmd += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += "' ";
  }
  return cmd;
}

/// Runs `args` through /bin/sh with `redirections` appended (e.g. `2>&1`, `< file`) and returns
/// (exit status, what it wrote to stdout); -1 as the status when it did not exit normally.
inline std::pair<int, std::string> run_command(const std::vector<std::string>& args,
                                               const std::string& redirections = "2>&1") {
  const std::string cmd = shell_quote(args) + redirections;
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

/// A fresh folder under the system's temporary folder, named `prefix` and the process id; removed
/// with what it holds at the end of the scope.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& prefix)
      : path(std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace xsn_test
