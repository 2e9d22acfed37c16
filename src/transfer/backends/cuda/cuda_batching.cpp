#include "transfer/backends/cuda/cuda_batching.hpp"

#include <algorithm>

#include "layout/chunk_io.hpp"
#include "transfer/backends/cuda/copy_limits.hpp"

namespace kvbm {

CudaCopyPath resolve_copy_path(const CudaOptions& options, std::size_t copy_bytes, bool device_to_device) {
  if (options.copy_path != CudaCopyPath::Auto) return options.copy_path;
  if (device_to_device) return CudaCopyPath::Kernel;
  return copy_bytes >= options.auto_copy_engine_bytes ? CudaCopyPath::CopyEngine : CudaCopyPath::Kernel;
}

namespace {

bool within_devices(const Layout& src, const Layout& dst) { return src.kind().is_device() && dst.kind().is_device(); }

}  // namespace

std::size_t kernel_descriptors_per_block(const Layout& layout) {
  return layout.config().num_layers * layout.config().outer_dim * cuda::descriptors_per_chunk(layout.chunk_bytes());
}

std::size_t kernel_inline_blocks(const Layout& layout) {
  return cuda::kMaxInlineDescriptors / std::max<std::size_t>(1, kernel_descriptors_per_block(layout));
}

CudaBatchRange cuda_batch_range(const CudaOptions& options, const Layout& src, const Layout& dst, std::size_t engine_batch) {
  const std::size_t largest = std::max(engine_batch, options.batch_bytes / std::max<std::size_t>(1, block_bytes(src)));
  const bool device_to_device = within_devices(src, dst);
  // A layout's chunks are its smallest copies: the path they resolve to is the path its batches take.
  if (resolve_copy_path(options, src.chunk_bytes(), device_to_device) == CudaCopyPath::CopyEngine ||
      (device_to_device && !options.ramp_device_batches)) {
    return {largest, largest};
  }
  return {std::min(engine_batch, std::max<std::size_t>(1, kernel_inline_blocks(src))), largest};
}

bool wants_block_pairs(const CudaOptions& options, const Layout& src, const Layout& dst) {
  return options.block_kernel &&
         resolve_copy_path(options, src.chunk_bytes(), within_devices(src, dst)) == CudaCopyPath::Kernel;
}

}  // namespace kvbm
