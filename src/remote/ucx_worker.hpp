#pragma once
// One UCX context and worker, and the one thread that makes every UCX call on them: callers
// post commands to it, and it progresses the worker, spinning while work is outstanding and
// sleeping on the worker's event descriptor when idle (so that a peer's incoming data or a
// posted command wakes it).
#include <ucp/api/ucp.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>

namespace kvbm::remote {

struct UcxWorkerOptions {
  std::string transports;
  std::string net_devices;
};

class UcxWorker {
 public:
  using Clock = std::chrono::steady_clock;
  // Throws Unsupported naming the UCX status when the context or worker cannot be made.
  explicit UcxWorker(const UcxWorkerOptions& options);
  // Call stop() first: the thread must run the owner's cleanup before the worker goes.
  ~UcxWorker();
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  [[nodiscard]] ucp_context_h context() const { return context_; }
  [[nodiscard]] ucp_worker_h worker() const { return worker_; }
  // This worker's address, for peers to connect to.
  [[nodiscard]] const std::string& address() const { return address_; }

  // Runs `command` on the progress thread, soon; returns at once.
  void post(std::function<void()> command);
  // Runs `task` on the progress thread and returns its result (or throws what it threw).
  template <typename Task>
  auto call(Task task) -> decltype(task()) {
    std::packaged_task<decltype(task())()> packaged(std::move(task));
    auto result = packaged.get_future();
    post([&packaged] { packaged(); });
    return result.get();
  }
  // While work is outstanding the thread spins and calls `tick` each turn (for deadlines).
  void set_tick(std::function<void(Clock::time_point)> tick);
  void add_outstanding(int delta) { outstanding_ += delta; }  // progress thread only
  // Runs `last` on the thread, then ends it; later posts are dropped.
  void stop(std::function<void()> last);

 private:
  void run();
  bool run_commands();

  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  int event_fd_ = -1;
  std::string address_;
  std::mutex mutex_;
  std::deque<std::function<void()>> commands_;
  bool stopping_ = false;
  int outstanding_ = 0;
  std::function<void(Clock::time_point)> tick_;
  std::thread thread_;
};

// "UCX <what>: <status>" as an exception of `code`.
[[noreturn]] void throw_ucx(ucs_status_t status, const std::string& what);

}  // namespace kvbm::remote
