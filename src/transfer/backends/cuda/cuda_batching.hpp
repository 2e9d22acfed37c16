#pragma once
// How the CUDA backend wants a direct GPU copy cut and carried: which path a layout pair's
// copies take, how large its batches grow, and when a batch travels as block pairs. Free of
// CUDA headers: the engine asks in builds without CUDA too.
#include <cstddef>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/backend_options.hpp"

namespace kvbm {

// The path copies averaging `copy_bytes` take under `options` (Kernel or CopyEngine, never Auto).
// Auto: copies within device memory always take the kernel, which reads and writes HBM on every
// SM; the copy engines, made for PCIe, moved 256K device->device blocks at 80 GB/s against the
// kernel's 1355 ceiling. Across PCIe, copies of auto_copy_engine_bytes and more take the engines.
[[nodiscard]] CudaCopyPath resolve_copy_path(const CudaOptions& options, std::size_t copy_bytes, bool device_to_device);

// Copy-kernel descriptors one block of `layout` takes at most (fewer where its chunks merge).
[[nodiscard]] std::size_t kernel_descriptors_per_block(const Layout& layout);

// Blocks of `layout` whose descriptors one kernel launch always carries inline (0 when a single
// block takes more): longer batches need a list in memory.
[[nodiscard]] std::size_t kernel_inline_blocks(const Layout& layout);

// The first and the largest batch, in blocks of `src`, of a direct GPU copy whose engine-level
// batch is `engine_batch` blocks. The kernel path's first batch is what the launch carries
// inline (one API call, no upload: the GPU starts the soonest, and later batches are built while
// it works); the copy-engine path takes batches of batch_bytes from the first (its executor cuts
// each into calls of copy_engine_call_copies), and so do copies within the device unless
// ramp_device_batches is set.
struct CudaBatchRange {
  std::size_t first;
  std::size_t largest;
};
[[nodiscard]] CudaBatchRange cuda_batch_range(const CudaOptions& options, const Layout& src, const Layout& dst,
                                              std::size_t engine_batch);

// Whether a path between these layouts should carry long kernel-path batches as block pairs.
[[nodiscard]] bool wants_block_pairs(const CudaOptions& options, const Layout& src, const Layout& dst);

}  // namespace kvbm
