#pragma once
// A `kvbm worker` process started for real, killed (SIGKILL) and reaped when the object goes:
// for the multi-process tests and the control bench's process mode.
#include <sys/types.h>

#include <string>
#include <vector>

namespace kvbm::testing {

// The kvbm CLI to start: $KVBM_CLI when set (the GPU machine runs a bundled copy), else `built`.
[[nodiscard]] std::string kvbm_cli(const std::string& built);

class WorkerProcess {
 public:
  // Runs `cli worker ARGS...`; started() says whether the process could be spawned.
  WorkerProcess(const std::string& cli, const std::vector<std::string>& worker_args);
  ~WorkerProcess() { kill(); }
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  void kill();
  [[nodiscard]] bool started() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

}  // namespace kvbm::testing
