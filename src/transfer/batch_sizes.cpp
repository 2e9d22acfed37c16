#include "transfer/batch_sizes.hpp"

#include <algorithm>
#include <variant>

#include "transfer/cuda/copy_limits.hpp"

namespace kvbm {

std::size_t kernel_descriptors_per_block(const Layout& layout) {
  return layout.config().num_layers * layout.config().outer_dim * cuda::descriptors_per_chunk(layout.chunk_bytes());
}

std::size_t kernel_inline_blocks(const Layout& layout) {
  return cuda::kMaxInlineDescriptors / std::max<std::size_t>(1, kernel_descriptors_per_block(layout));
}

bool is_direct_cuda_copy(const TransferPlan& plan) {
  const auto* direct = std::get_if<DirectPlan>(&plan);
  return direct && (direct->strategy == TransferStrategy::CudaAsyncH2D || direct->strategy == TransferStrategy::CudaAsyncD2H ||
                    direct->strategy == TransferStrategy::CudaAsyncD2D);
}

std::vector<std::size_t> batch_sizes(const TransferConfig& config, const TransferPlan& plan, const Layout& src,
                                     std::size_t blocks) {
  std::size_t first = config.max_transfer_batch_size;
  std::size_t largest = first;
  if (is_direct_cuda_copy(plan)) {
    const std::size_t block_bytes = src.chunk_bytes() * src.config().num_layers * src.config().outer_dim;
    largest = std::max(first, config.cuda_batch_bytes / std::max<std::size_t>(1, block_bytes));
    if (config.cuda_copy_engine) {
      // The copy-engine path takes batches of this size from the first; its executor cuts each
      // into cudaMemcpyBatchAsync calls of at most cuda_copy_engine_call_copies copies (calls of
      // 1024 measured two to four times faster than one call of tens of thousands).
      first = largest;
    } else {
      // The kernel path's first batch is as many blocks as the launch can carry inline (one API
      // call, no upload): the GPU starts the soonest, and later batches are built while it works.
      first = std::min(first, std::max<std::size_t>(1, kernel_inline_blocks(src)));
    }
  }
  std::vector<std::size_t> sizes;
  for (std::size_t done = 0, next = first; done < blocks; done += sizes.back(), next = std::min(2 * next, largest)) {
    sizes.push_back(std::min(next, blocks - done));
  }
  return sizes;
}

}  // namespace kvbm
