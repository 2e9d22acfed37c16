#pragma once
// A point in a transfer path's CUDA streams, for callers whose own GPU work must start only
// after kvbm's copies: an inference engine's attention kernel for layer L, ordered after the
// copy that loads layer L, without the engine's thread waiting on the host (which would drain
// the GPU's queue of work that does not depend on the copy).
#include <cstdint>
#include <memory>

namespace kvbm {

class GpuFence {
 public:
  // The events behind a fence (CUDA builds only).
  struct Events {
    virtual ~Events() = default;
    virtual void enqueue_wait(std::uintptr_t stream) const = 0;
  };

  explicit GpuFence(std::shared_ptr<const Events> events) : events_(std::move(events)) {}

  // Makes `stream` (a cudaStream_t of the caller's, as an integer; 0 is the legacy default
  // stream) wait on the GPU for every copy the fence covers. Returns at once. Throws
  // kvbm::Error (code Cuda) if the runtime refuses the wait, naming the stream.
  void enqueue_wait(std::uintptr_t stream) const { events_->enqueue_wait(stream); }

 private:
  std::shared_ptr<const Events> events_;
};

}  // namespace kvbm
