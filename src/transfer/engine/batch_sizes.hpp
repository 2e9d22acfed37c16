#pragma once
// How a transfer is cut into batches, each started as soon as it is checked and expanded.
#include <cstddef>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/strategy.hpp"
#include "kvbm/transfer/transfer_context.hpp"

namespace kvbm {

// Block counts of the batches a transfer of `blocks` blocks from `src` to `dst` is cut into
// under `plan`: max_transfer_batch_size each, except
// - direct GPU copies, which start and grow as the CUDA backend says (cuda_batch_range);
// - transfers to or from disk, which start at max_transfer_batch_size and double up to
//   kLargestDiskBatch: a batch's I/O goes in file order, and a virtual disk serves scattered
//   small blocks in file order up to twice as fast as in random order (bench/results), so the
//   larger the batch, the more of the request is in order.
[[nodiscard]] std::vector<std::size_t> batch_sizes(const TransferConfig& config, const TransferPlan& plan, const Layout& src,
                                                   const Layout& dst, std::size_t blocks);

inline constexpr std::size_t kLargestDiskBatch = std::size_t{1} << 16;

// Whether `plan` is one direct asynchronous CUDA copy (H2D, D2H or D2D): the plans whose batches
// run on the CUDA executors' streams.
[[nodiscard]] bool is_direct_cuda_copy(const TransferPlan& plan);

}  // namespace kvbm
