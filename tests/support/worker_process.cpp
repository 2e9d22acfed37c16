#include "support/worker_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

extern char** environ;

namespace kvbm::testing {

std::string kvbm_cli(const std::string& built) {
  const char* cli = std::getenv("KVBM_CLI");
  return cli ? cli : built;
}

WorkerProcess::WorkerProcess(const std::string& cli, const std::vector<std::string>& worker_args,
                             std::optional<std::string> stderr_path) {
  std::vector<std::string> args = {cli, "worker"};
  args.insert(args.end(), worker_args.begin(), worker_args.end());
  spawn(args, stderr_path, {}, false);
}

WorkerProcess WorkerProcess::command(const std::string& cli, const std::vector<std::string>& args,
                                     const std::string& stderr_path, const std::vector<std::string>& env) {
  WorkerProcess process;
  std::vector<std::string> all = {cli};
  all.insert(all.end(), args.begin(), args.end());
  process.spawn(all, stderr_path, env, true);
  return process;
}

void WorkerProcess::spawn(const std::vector<std::string>& args, const std::optional<std::string>& stderr_path,
                          const std::vector<std::string>& env, bool output_too) {
  std::vector<std::string> arg_copies = args;
  std::vector<char*> argv;
  for (auto& arg : arg_copies) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_copies = env;
  std::vector<char*> envp;
  for (auto& entry : env_copies) envp.push_back(entry.data());
  for (char** entry = environ; *entry != nullptr; ++entry) envp.push_back(*entry);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stderr_path) {
    posix_spawn_file_actions_addopen(&actions, 2, stderr_path->c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (output_too) posix_spawn_file_actions_adddup2(&actions, 2, 1);
  }
  if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&actions);
}

void WorkerProcess::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  if (reaper_.valid()) (void)reaper_.get();  // the reaper's waitpid returns now
  else ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void WorkerProcess::signal(int number) const {
  if (pid_ > 0) ::kill(pid_, number);
}

std::optional<int> WorkerProcess::wait_exit(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return std::nullopt;
  // A thread blocks in waitpid for the process's end; this one waits for that, up to `limit`.
  if (!reaper_.valid()) {
    reaper_ = std::async(std::launch::async, [pid = pid_] {
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    });
  }
  if (reaper_.wait_for(limit) != std::future_status::ready) return std::nullopt;
  const int status = reaper_.get();
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace kvbm::testing
