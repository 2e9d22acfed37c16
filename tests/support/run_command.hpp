#pragma once
// Runs a shell command and returns its standard output and its status as pclose gives it
// (WEXITSTATUS for the exit code); redirect standard error in the command as the test needs.
#include <cstdio>
#include <string>
#include <utility>

namespace kvbm::testing {

inline std::pair<std::string, int> run_command(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {"popen failed", -1};
  std::string output;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, n);
  return {output, ::pclose(pipe)};
}

}  // namespace kvbm::testing
