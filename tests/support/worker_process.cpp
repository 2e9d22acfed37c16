#include "support/worker_process.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>

extern char** environ;

namespace kvbm::testing {

std::string kvbm_cli(const std::string& built) {
  const char* cli = std::getenv("KVBM_CLI");
  return cli ? cli : built;
}

WorkerProcess::WorkerProcess(const std::string& cli, const std::vector<std::string>& worker_args) {
  std::vector<std::string> args = {cli, "worker"};
  args.insert(args.end(), worker_args.begin(), worker_args.end());
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
}

void WorkerProcess::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace kvbm::testing
