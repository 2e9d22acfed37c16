// Built without CUDA or NCCL: there is no device pool to broadcast into.
#include "common/make_error.hpp"
#include "distributed/replicated_broadcast.hpp"

namespace kvbm {

struct PackedBroadcast::Gpu {};

PackedBroadcast::PackedBroadcast(LayoutPtr, PackedBroadcastOptions) : piece_blocks_(0) {
  throw make_error(ErrorCode::Unsupported, "replicated mode needs CUDA and NCCL, and kvbm was built without them");
}

PackedBroadcast::~PackedBroadcast() = default;

void PackedBroadcast::run(NcclCommunicator&, std::span<const std::size_t>) {}

}  // namespace kvbm
