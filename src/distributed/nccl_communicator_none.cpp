// Built without CUDA or without NCCL's header: replicated mode is an error saying so.
#include "common/make_error.hpp"
#include "kvbm/distributed/nccl_communicator.hpp"

namespace kvbm {

struct NcclCommunicator::Impl {};

namespace {
constexpr const char* kWhy = "kvbm was built without NCCL (no CUDA toolkit, or no nccl.h in it)";
}

bool NcclCommunicator::available(std::string& reason) {
  reason = kWhy;
  return false;
}

std::string NcclCommunicator::new_unique_id() { throw make_error(ErrorCode::Unsupported, "replicated mode: {}", kWhy); }

NcclCommunicator::NcclCommunicator(const std::string&, int, int, int, std::chrono::milliseconds, bool) {
  throw make_error(ErrorCode::Unsupported, "replicated mode: {}", kWhy);
}

NcclCommunicator::~NcclCommunicator() = default;

void NcclCommunicator::broadcast(std::span<const std::pair<void*, std::size_t>>, int) {
  throw make_error(ErrorCode::Unsupported, "replicated mode: {}", kWhy);
}

void NcclCommunicator::enqueue_broadcast(std::span<const std::pair<void*, std::size_t>>, int, void*) {
  throw make_error(ErrorCode::Unsupported, "replicated mode: {}", kWhy);
}
void* NcclCommunicator::stream() const { return nullptr; }
bool NcclCommunicator::all_ok(bool) { throw make_error(ErrorCode::Unsupported, "replicated mode: {}", kWhy); }
void NcclCommunicator::synchronize() { throw make_error(ErrorCode::Unsupported, "replicated mode: {}", kWhy); }
void NcclCommunicator::wait_event(void*) { throw make_error(ErrorCode::Unsupported, "replicated mode: {}", kWhy); }

void NcclCommunicator::retire() {}

int NcclCommunicator::rank() const { return 0; }
int NcclCommunicator::world_size() const { return 0; }
int NcclCommunicator::device() const { return 0; }
bool NcclCommunicator::aborted() const { return true; }

}  // namespace kvbm
