#include "transfer/cuda/event_completions.hpp"

namespace kvbm::cuda {

EventCompletions::EventCompletions(std::chrono::microseconds spin) : spin_(spin), thread_([this] { run(); }) {}

EventCompletions::~EventCompletions() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  thread_.join();
}

void EventCompletions::watch(cudaEvent_t event, std::function<void(Status)> callback) {
  {
    std::lock_guard lock(mutex_);
    queue_.emplace_back(event, std::move(callback));
  }
  ready_.notify_one();
}

void EventCompletions::run() {
  for (;;) {
    std::deque<std::pair<cudaEvent_t, std::function<void(Status)>>> batch;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      batch.swap(queue_);
    }
    // Events of one stream fire in order. Only sleep (blocking sync) on one that has not fired
    // yet: when the GPU is ahead, a whole run of finished events completes without a wake-up each.
    for (auto& [event, callback] : batch) {
      // Short copies finish within microseconds: poll briefly before paying for a blocking
      // wait's interrupt and thread wake-up (tens to hundreds of microseconds on a VM).
      cudaError_t result = cudaEventQuery(event);
      const auto spin_until = std::chrono::steady_clock::now() + spin_;
      while (result == cudaErrorNotReady && std::chrono::steady_clock::now() < spin_until) {
        std::this_thread::yield();
        result = cudaEventQuery(event);
      }
      if (result == cudaErrorNotReady) result = cudaEventSynchronize(event);
      cudaEventDestroy(event);
      if (result == cudaSuccess) {
        callback(Status{});
      } else {
        cudaGetLastError();
        callback(make_error(ErrorCode::Cuda, "CUDA copy failed on the GPU: {} ({})", cudaGetErrorString(result),
                            cudaGetErrorName(result)));
      }
    }
  }
}

}  // namespace kvbm::cuda
