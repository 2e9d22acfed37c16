#pragma once
// The completion thread of one CUDA stream: it waits on each recorded event, or each signalling
// kernel's progress word, in order (submissions of one stream complete in order) and runs the
// callback with the outcome. Submitting threads never block on the GPU.
#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "kvbm/common/error.hpp"
#include "transfer/backends/cuda/stream_progress.hpp"

namespace kvbm::cuda {

class EventCompletions {
 public:
  // `spin`: how long to poll an unfinished event without sleeping (then: short sleeps, and
  // past 50 ms a blocking wait). `watch`: the same for a submission that also advances a
  // StreamProgress word, which costs no driver call to read (the event is still asked every
  // 20 us, as it alone reports errors). `idle_spin`: how long to poll for new work once the
  // queue is empty before sleeping (a submission then finds the thread awake: no wake-up latency).
  EventCompletions(std::chrono::microseconds spin, std::chrono::microseconds watch, std::chrono::microseconds idle_spin);
  ~EventCompletions();  // finishes what was queued
  EventCompletions(const EventCompletions&) = delete;
  EventCompletions& operator=(const EventCompletions&) = delete;

  // An event to record and watch: one that fired before, or a new one (on the current device,
  // which must be this stream's). Reusing fired events spares every one-block request an
  // event creation and destruction in the driver.
  [[nodiscard]] cudaEvent_t take_event();

  // Takes ownership of `event`; `callback` runs on the completion thread once it has fired,
  // or once `progress` has reached `number` (recorded after the event) when `number` is not 0.
  void watch(cudaEvent_t event, std::function<void(Status)> callback, const StreamProgress* progress = nullptr,
             std::uint64_t number = 0);
  // The same for a kernel that writes `progress` itself when it ends (KernelSignal), with no
  // event: errors are learned from `stream`, asked as often as an event would be.
  void watch_signal(cudaStream_t stream, std::function<void(Status)> callback, const StreamProgress& progress,
                    std::uint64_t number);

 private:
  struct Pending {
    cudaEvent_t event;  // nullptr for a signalling kernel
    std::function<void(Status)> callback;
    const StreamProgress* progress;
    std::uint64_t number;
    cudaStream_t stream = nullptr;  // asked where there is no event
  };
  void enqueue(Pending pending);
  // Where the submission stands: cudaSuccess, cudaErrorNotReady, or the error it met.
  [[nodiscard]] static cudaError_t query(const Pending& pending);
  void run();
  [[nodiscard]] cudaError_t wait_for(const Pending& pending) const;

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Pending> queue_;
  std::atomic<std::uint64_t> queued_{0};  // bumped by watch() and stopping, for the idle poll
  std::vector<cudaEvent_t> fired_;  // for reuse
  bool stopping_ = false;
  std::chrono::microseconds spin_;
  std::chrono::microseconds watch_;
  std::chrono::microseconds idle_spin_;
  std::thread thread_;
};

}  // namespace kvbm::cuda
