#pragma once
#include <cstddef>
#include <utility>

namespace kvbm {
// (source block index, destination block index), as in the seed's BlockTransferRequest.
using BlockPair = std::pair<std::size_t, std::size_t>;
}  // namespace kvbm
