#pragma once
// A `kvbm` process started for real (by default `kvbm worker ARGS...`), killed (SIGKILL) and
// reaped when the object goes: for the multi-process tests and the control bench's process mode.
#include <sys/types.h>

#include <chrono>
#include <future>
#include <optional>
#include <utility>
#include <string>
#include <vector>

namespace kvbm::testing {

// The kvbm CLI to start: $KVBM_CLI when set (the GPU machine runs a bundled copy), else `built`.
[[nodiscard]] std::string kvbm_cli(const std::string& built);

class WorkerProcess {
 public:
  // Runs `cli worker ARGS...`; started() says whether the process could be spawned. With
  // `stderr_path`, the process's standard error goes to that file.
  WorkerProcess(const std::string& cli, const std::vector<std::string>& worker_args,
                std::optional<std::string> stderr_path = std::nullopt);
  // Runs `cli ARGS...` (any subcommand), with the extra environment `env` ("NAME=VALUE"); its
  // standard output goes to the file too, after what it wrote to standard error.
  static WorkerProcess command(const std::string& cli, const std::vector<std::string>& args,
                               const std::string& stderr_path, const std::vector<std::string>& env = {});
  ~WorkerProcess() { kill(); }
  WorkerProcess(WorkerProcess&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), reaper_(std::move(other.reaper_)) {}
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  void kill();
  void signal(int number) const;
  // Waits up to `limit` for the process to end: its exit status, or 128 + the signal that
  // ended it; nullopt if it is still running.
  [[nodiscard]] std::optional<int> wait_exit(std::chrono::milliseconds limit);
  [[nodiscard]] bool started() const { return pid_ > 0; }

 private:
  WorkerProcess() = default;
  void spawn(const std::vector<std::string>& args, const std::optional<std::string>& stderr_path,
             const std::vector<std::string>& env, bool output_too);
  pid_t pid_ = -1;
  std::future<int> reaper_;  // waitpid's status, once wait_exit has started waiting
};

// The whole text of a file (a process's captured stderr).
[[nodiscard]] std::string read_text(const std::string& path);

}  // namespace kvbm::testing
