#include "transfer/cuda/event_completions.hpp"

#include <sys/prctl.h>

#include "common/poll.hpp"

namespace kvbm::cuda {
namespace {

// After the spin, an unfinished event is polled between short sleeps rather than slept on:
// a blocking wait's interrupt and thread wake-up cost tens to hundreds of microseconds on a VM,
// several percent of a large transfer. Past kPollFor the copy is long (or stuck behind other
// work) and a blocking wait costs nothing that matters.
constexpr auto kPollEvery = std::chrono::microseconds(20);
constexpr auto kPollFor = std::chrono::milliseconds(50);

cudaError_t wait_for(cudaEvent_t event, std::chrono::microseconds spin) {
  cudaError_t result = cudaEventQuery(event);
  const auto start = std::chrono::steady_clock::now();
  while (result == cudaErrorNotReady && std::chrono::steady_clock::now() - start < spin) {
    std::this_thread::yield();
    result = cudaEventQuery(event);
  }
  while (result == cudaErrorNotReady && std::chrono::steady_clock::now() - start < kPollFor) {
    std::this_thread::sleep_for(kPollEvery);
    result = cudaEventQuery(event);
  }
  if (result == cudaErrorNotReady) result = cudaEventSynchronize(event);
  return result;
}

}  // namespace

EventCompletions::EventCompletions(std::chrono::microseconds spin, std::chrono::microseconds idle_spin)
    : spin_(spin), idle_spin_(idle_spin), thread_([this] { run(); }) {}

EventCompletions::~EventCompletions() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  thread_.join();
  for (cudaEvent_t event : fired_) cudaEventDestroy(event);
}

cudaEvent_t EventCompletions::take_event() {
  {
    std::lock_guard lock(mutex_);
    if (!fired_.empty()) {
      cudaEvent_t event = fired_.back();
      fired_.pop_back();
      return event;
    }
  }
  cudaEvent_t event = nullptr;
  const cudaError_t result = cudaEventCreateWithFlags(&event, cudaEventDisableTiming | cudaEventBlockingSync);
  if (result != cudaSuccess) {
    cudaGetLastError();
    throw make_error(ErrorCode::Cuda, "cudaEventCreate failed: {} ({})", cudaGetErrorString(result), cudaGetErrorName(result));
  }
  return event;
}

void EventCompletions::watch(cudaEvent_t event, std::function<void(Status)> callback) {
  {
    std::lock_guard lock(mutex_);
    queue_.emplace_back(event, std::move(callback));
  }
  ready_.notify_one();
}

void EventCompletions::run() {
  // The default timer slack (50 us) would stretch every 20 us poll to 70.
  prctl(PR_SET_TIMERSLACK, 1000UL);
  for (;;) {
    std::deque<std::pair<cudaEvent_t, std::function<void(Status)>>> batch;
    {
      std::unique_lock lock(mutex_);
      // Back-to-back small transfers (a worker serving one-block requests) find the thread awake.
      const auto has_work = [&] { return stopping_ || !queue_.empty(); };
      if (!poll_for(lock, idle_spin_, has_work)) ready_.wait(lock, has_work);
      if (queue_.empty()) return;
      batch.swap(queue_);
    }
    // Events of one stream fire in order: when the GPU is ahead, a whole run of finished
    // events completes without a wait each.
    for (auto& [event, callback] : batch) {
      const cudaError_t result = wait_for(event, spin_);
      if (result == cudaSuccess) {
        {
          std::lock_guard lock(mutex_);
          fired_.push_back(event);
        }
        callback(Status{});
      } else {
        cudaEventDestroy(event);
        cudaGetLastError();
        callback(make_error(ErrorCode::Cuda, "CUDA copy failed on the GPU: {} ({})", cudaGetErrorString(result),
                            cudaGetErrorName(result)));
      }
    }
  }
}

}  // namespace kvbm::cuda
