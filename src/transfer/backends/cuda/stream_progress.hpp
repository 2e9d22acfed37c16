#pragma once
// A counter in pinned host memory that the GPU advances in stream order after each submission
// (cuStreamWriteValue64: run by the GPU's front end once the work before it has finished, with
// a system-wide fence, so no SM is used). The completion thread then learns that a copy has
// finished by reading a memory word instead of asking the driver, whose lock the submitting
// thread needs for its launches: it can afford to watch the word continuously, and sees the
// end of a copy within a microsecond instead of at its next poll. An inline copy kernel may
// write the word itself (kernel_signal), which spares the memory operation.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "transfer/backends/cuda/copy_kernel.hpp"

namespace kvbm::cuda {

class StreamProgress {
 public:
  // nullptr when the driver offers no stream memory operations (then events alone are used).
  // `stream` is used once, to check that a write really runs.
  [[nodiscard]] static std::unique_ptr<StreamProgress> create(cudaStream_t stream);
  ~StreamProgress();
  StreamProgress(const StreamProgress&) = delete;
  StreamProgress& operator=(const StreamProgress&) = delete;

  // Enqueues the write of the next number on `stream` and returns it; 0 when the write could
  // not be enqueued (the caller falls back to its event). Calls are serialized by the caller,
  // and every stream they name must run in one order (one stream, or joined into one).
  [[nodiscard]] std::uint64_t advance(cudaStream_t stream);
  // The next number, for a kernel to write when it ends (see KernelSignal), launched next on
  // this word's stream; the same rules as advance(). A launch that fails leaves its number
  // unwritten, which is harmless: reached() asks for at least a number, and the next one written
  // is larger.
  [[nodiscard]] KernelSignal kernel_signal() { return {word_, arrivals_, ++next_}; }
  // Whether the write of `number` has happened (and with it everything queued before it).
  [[nodiscard]] bool reached(std::uint64_t number) const;

 private:
  // `written`: the number create() wrote to check the word.
  StreamProgress(std::uint64_t* word, std::uint32_t* arrivals, void* write, std::uint64_t written)
      : word_(word), arrivals_(arrivals), write_(write), next_(written) {}

  std::uint64_t* word_;       // pinned host memory, written by the GPU
  std::uint32_t* arrivals_;   // device memory: a signalling kernel's finished CTAs (zero between kernels)
  void* write_;               // the driver's cuStreamWriteValue64
  std::uint64_t next_;        // the last number enqueued or handed to a kernel
};

}  // namespace kvbm::cuda
