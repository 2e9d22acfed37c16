#include "transfer/backends/cuda/event_completions.hpp"

#include <sys/prctl.h>

#include "common/make_error.hpp"
#include "common/poll.hpp"

namespace kvbm::cuda {
namespace {

// After the spin, an unfinished event is polled between short sleeps rather than slept on:
// a blocking wait's interrupt and thread wake-up cost tens to hundreds of microseconds on a VM,
// several percent of a large transfer. Past kPollFor the copy is long (or stuck behind other
// work) and a blocking wait costs nothing that matters.
constexpr auto kPollEvery = std::chrono::microseconds(20);
constexpr auto kPollFor = std::chrono::milliseconds(50);

}  // namespace

EventCompletions::EventCompletions(std::chrono::microseconds spin, std::chrono::microseconds watch,
                                   std::chrono::microseconds idle_spin)
    : spin_(spin), watch_(watch), idle_spin_(idle_spin), thread_([this] { run(); }) {}

EventCompletions::~EventCompletions() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  bump(queued_);
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

void EventCompletions::watch(cudaEvent_t event, std::function<void(Status)> callback, const StreamProgress* progress,
                             std::uint64_t number) {
  enqueue(Pending{event, std::move(callback), number != 0 ? progress : nullptr, number});
}

void EventCompletions::watch_signal(cudaStream_t stream, std::function<void(Status)> callback,
                                    const StreamProgress& progress, std::uint64_t number) {
  enqueue(Pending{nullptr, std::move(callback), &progress, number, stream});
}

void EventCompletions::enqueue(Pending pending) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(pending));
  }
  bump(queued_);
  ready_.notify_one();
}

cudaError_t EventCompletions::query(const Pending& pending) {
  if (pending.event) return cudaEventQuery(pending.event);
  // The stream holds a sticky error, and is idle only once the kernel (which writes the word
  // before it ends) is done.
  if (pending.progress->reached(pending.number)) return cudaSuccess;
  return cudaStreamQuery(pending.stream);
}

void EventCompletions::run() {
  // The default timer slack (50 us) would stretch every 20 us poll to 70.
  prctl(PR_SET_TIMERSLACK, 1000UL);
  for (;;) {
    std::deque<Pending> batch;
    {
      std::unique_lock lock(mutex_);
      // Back-to-back small transfers (a worker serving one-block requests) find the thread awake.
      const auto has_work = [&] { return stopping_ || !queue_.empty(); };
      if (!poll_for(lock, idle_spin_, queued_, has_work)) ready_.wait(lock, has_work);
      if (queue_.empty()) return;
      batch.swap(queue_);
    }
    // Events of one stream fire in order: when the GPU is ahead, a whole run of finished
    // events completes without a wait each.
    for (Pending& pending : batch) {
      const cudaError_t result = wait_for(pending);
      if (result == cudaSuccess) {
        if (pending.event) {
          std::lock_guard lock(mutex_);
          fired_.push_back(pending.event);
        }
        pending.callback(Status{});
      } else {
        if (pending.event) cudaEventDestroy(pending.event);
        cudaGetLastError();
        pending.callback(make_error(ErrorCode::Cuda, "CUDA copy failed on the GPU: {} ({})", cudaGetErrorString(result),
                                    cudaGetErrorName(result)));
      }
    }
  }
}

cudaError_t EventCompletions::wait_for(const Pending& pending) const {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  if (pending.progress) {
    for (auto next_query = start, now = start; now - start < watch_; now = Clock::now()) {
      if (pending.progress->reached(pending.number)) return cudaSuccess;
      if (now >= next_query) {
        const cudaError_t result = query(pending);
        if (result != cudaErrorNotReady) return result;
        next_query = now + kPollEvery;
      }
      std::this_thread::yield();
    }
  }
  cudaError_t result = query(pending);
  while (result == cudaErrorNotReady && Clock::now() - start < spin_) {
    std::this_thread::yield();
    result = query(pending);
  }
  while (result == cudaErrorNotReady && Clock::now() - start < kPollFor) {
    std::this_thread::sleep_for(kPollEvery);
    result = query(pending);
  }
  if (result == cudaErrorNotReady) {
    // Without an event, the stream is waited for whole: later submissions on it end no later
    // than their own waits would.
    result = pending.event ? cudaEventSynchronize(pending.event) : cudaStreamSynchronize(pending.stream);
  }
  return result;
}

}  // namespace kvbm::cuda
