#pragma once
// The CUDA executors of a transfer context: one per (GPU, direction), each with its own
// kvbm-owned stream, so offloads (D2H) and onboards (H2D) overlap. Built without CUDA, every
// request for one fails with an error saying so.
#include <memory>
#include <span>
#include <string>

#include "kvbm/memory/storage_kind.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "transfer/block_geometry.hpp"
#include "transfer/copy_op.hpp"

namespace kvbm {

struct CudaPathConfig {
  bool copy_engine = false;       // KVBM_CUDA_COPY_PATH=copy_engine: cudaMemcpyBatchAsync, no SMs
  int copy_ctas = 8;              // KVBM_CUDA_COPY_CTAS: CTAs of the copy kernel
  int copy_threads = 1024;        // KVBM_CUDA_COPY_THREADS: threads per CTA
  int copy_engine_streams = 2;    // KVBM_CUDA_CE_STREAMS: streams a copy-engine batch is spread over
  std::size_t copy_engine_call_copies = 1024;  // KVBM_CUDA_CE_CALL_COPIES: most copies per cudaMemcpyBatchAsync
  int kernel_streams = 2;         // KVBM_CUDA_KERNEL_STREAMS: streams the copy kernel's batches take turns on
  bool upload_descriptors = true;  // KVBM_CUDA_UPLOAD_DESCRIPTORS: copy descriptor lists to the device first
  int completion_spin_us = 100;   // KVBM_CUDA_SPIN_US: poll a finished-soon event before sleeping on it
  int completion_watch_us = 10000;  // KVBM_CUDA_WATCH_US: the same, watching the GPU-written progress word
  int idle_spin_us = 1000;        // KVBM_CUDA_IDLE_SPIN_US: poll for the next submission before sleeping
};

// Runs copy ops, or block pairs whose chunks the kernel locates itself.
class CudaExecutor : public Executor {
 public:
  // Copies every chunk of `pairs` (indices checked by the caller) where `geometry` places it;
  // the pairs are read before this returns. Kernel path only.
  virtual void submit_blocks(const BlockGeometry& geometry, std::span<const BlockPair> pairs, DoneCallback done) = 0;
};

class CudaExecutors {
 public:
  virtual ~CudaExecutors() = default;
  // The executor for copies from `src` to `dst` (at least one a device; host sides pinned).
  virtual CudaExecutor& executor(StorageKind src, StorageKind dst) = 0;
};

[[nodiscard]] std::unique_ptr<CudaExecutors> make_cuda_executors(const CudaPathConfig& config);

}  // namespace kvbm
