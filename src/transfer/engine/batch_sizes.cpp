#include "transfer/engine/batch_sizes.hpp"

#include <algorithm>
#include <variant>

#include "transfer/backends/cuda/cuda_batching.hpp"

namespace kvbm {

bool is_direct_cuda_copy(const TransferPlan& plan) {
  const auto* direct = std::get_if<DirectPlan>(&plan);
  return direct && (direct->strategy == TransferStrategy::CudaAsyncH2D || direct->strategy == TransferStrategy::CudaAsyncD2H ||
                    direct->strategy == TransferStrategy::CudaAsyncD2D);
}

std::vector<std::size_t> batch_sizes(const TransferConfig& config, const TransferPlan& plan, const Layout& src,
                                     const Layout& dst, std::size_t blocks) {
  CudaBatchRange range{config.max_transfer_batch_size, config.max_transfer_batch_size};
  if (is_direct_cuda_copy(plan)) range = cuda_batch_range(config.cuda, src, dst, config.max_transfer_batch_size);
  if (src.kind().is_disk() || dst.kind().is_disk()) range.largest = std::max(range.first, kLargestDiskBatch);
  std::vector<std::size_t> sizes;
  for (std::size_t done = 0, next = range.first; done < blocks;
       done += sizes.back(), next = std::min(2 * next, range.largest)) {
    sizes.push_back(std::min(next, blocks - done));
  }
  return sizes;
}

}  // namespace kvbm
