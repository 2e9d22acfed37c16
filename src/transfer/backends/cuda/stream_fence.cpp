#include "transfer/backends/cuda/stream_fence.hpp"

#include <vector>

#include "platform/cuda_check.hpp"

namespace kvbm::cuda {
namespace {

class StreamEvents final : public GpuFence::Events {
 public:
  explicit StreamEvents(std::span<const cudaStream_t> streams) {
    events_.reserve(streams.size());
    for (cudaStream_t stream : streams) {
      cudaEvent_t event = nullptr;
      check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreateWithFlags (fence)");
      events_.push_back(event);  // owned from here: the destructor frees it if the record fails
      check(cudaEventRecord(event, stream), "cudaEventRecord (fence)");
    }
  }
  // A wait already enqueued keeps the event's state: destroying the event does not undo it.
  ~StreamEvents() override {
    for (cudaEvent_t event : events_) cudaEventDestroy(event);
  }
  StreamEvents(const StreamEvents&) = delete;
  StreamEvents& operator=(const StreamEvents&) = delete;

  void enqueue_wait(std::uintptr_t stream) const override {
    for (cudaEvent_t event : events_) {
      check(cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(stream), event, 0),
            [&] { return fmt::format("cudaStreamWaitEvent (fence) on stream {:#x}", stream); });
    }
  }

 private:
  std::vector<cudaEvent_t> events_;
};

}  // namespace

GpuFence record_fence(std::span<const cudaStream_t> streams) {
  return GpuFence(std::make_shared<const StreamEvents>(streams));
}

}  // namespace kvbm::cuda
