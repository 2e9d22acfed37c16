#pragma once
// The CUDA executors of a transfer context: one per (GPU, direction), each with its own
// kvbm-owned stream, so offloads (D2H) and onboards (H2D) overlap. Built without CUDA, every
// request for one fails with an error saying so.
#include <memory>
#include <span>
#include <string>

#include "kvbm/common/latency.hpp"
#include "kvbm/memory/storage_kind.hpp"
#include "kvbm/transfer/backend_options.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "kvbm/transfer/gpu_fence.hpp"
#include "transfer/engine/block_geometry.hpp"
#include "transfer/engine/copy_op.hpp"

namespace kvbm {

// Runs copy ops (on the kernel or the copy engine, as options.copy_path says; Auto picks per
// submission by the ops' average size), or block pairs whose chunks the kernel locates itself.
class CudaExecutor : public Executor {
 public:
  // Copies every chunk of `pairs` (indices checked by the caller) where `geometry` places it;
  // the pairs are read before this returns. Kernel path only.
  virtual void submit_blocks(const BlockGeometry& geometry, std::span<const BlockPair> pairs, DoneCallback done) = 0;
  // A fence after everything submitted to this executor so far (see GpuFence).
  [[nodiscard]] virtual GpuFence fence() = 0;
};

class CudaExecutors {
 public:
  virtual ~CudaExecutors() = default;
  // The executor for copies from `src` to `dst` (at least one a device; host sides pinned).
  virtual CudaExecutor& executor(StorageKind src, StorageKind dst) = 0;
};

// `options` validated by the caller; `spin` says how long completion threads poll.
[[nodiscard]] std::unique_ptr<CudaExecutors> make_cuda_executors(const CudaOptions& options, const SpinBudgets& spin);

}  // namespace kvbm
