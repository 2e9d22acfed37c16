#pragma once
// A counter in pinned host memory that the GPU advances in stream order after each submission
// (cuStreamWriteValue64: run by the GPU's front end once the work before it has finished, with
// a system-wide fence, so no SM is used). The completion thread then learns that a copy has
// finished by reading a memory word instead of asking the driver, whose lock the submitting
// thread needs for its launches: it can afford to watch the word continuously, and sees the
// end of a copy within a microsecond instead of at its next poll.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

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
  // Whether the write of `number` has happened (and with it everything queued before it).
  [[nodiscard]] bool reached(std::uint64_t number) const;

 private:
  // `written`: the number create() wrote to check the word.
  StreamProgress(std::uint64_t* word, void* write, std::uint64_t written) : word_(word), write_(write), next_(written) {}

  std::uint64_t* word_;  // pinned host memory, written by the GPU
  void* write_;          // the driver's cuStreamWriteValue64
  std::uint64_t next_;   // the last number enqueued
};

}  // namespace kvbm::cuda
