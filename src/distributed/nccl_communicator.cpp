#include "kvbm/distributed/nccl_communicator.hpp"

#include <cuda_runtime_api.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstring>
#include <thread>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "platform/cuda_check.hpp"
#include "platform/cuda_runtime.hpp"
#include "platform/nccl_library.hpp"

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

const nccl::Library& library() {
  std::string reason;
  const nccl::Library* loaded = nccl::Library::get(reason);
  if (!loaded) throw make_error(ErrorCode::Unsupported, "replicated mode needs NCCL: {}", reason);
  return *loaded;
}

std::string to_hex(const ncclUniqueId& id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char byte : id.internal) {
    out.push_back(kDigits[(static_cast<unsigned char>(byte) >> 4) & 0xf]);
    out.push_back(kDigits[static_cast<unsigned char>(byte) & 0xf]);
  }
  return out;
}

ncclUniqueId from_hex(const std::string& text) {
  ncclUniqueId id{};
  if (text.size() != 2 * sizeof(id.internal)) {
    throw make_error(ErrorCode::InvalidArgument, "NCCL unique id must be {} hex digits, got {} characters",
                     2 * sizeof(id.internal), text.size());
  }
  const auto digit = [&](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw make_error(ErrorCode::InvalidArgument, "NCCL unique id holds '{}', not a lowercase hex digit", printable({&c, 1}));
  };
  for (std::size_t i = 0; i < sizeof(id.internal); ++i) {
    id.internal[i] = static_cast<char>(digit(text[2 * i]) * 16 + digit(text[2 * i + 1]));
  }
  return id;
}

}  // namespace

struct NcclCommunicator::Impl {
  const nccl::Library& nccl = library();
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;
  std::int32_t* word = nullptr;  // device memory for all_ok
  int rank = 0;
  int world_size = 0;
  int device = 0;
  std::chrono::milliseconds timeout{0};
  std::atomic<bool> aborted{false};
  std::atomic<bool> retired{false};

  ~Impl() {
    // An aborted communicator's resources went with the abort; a retired one may have peers
    // that are gone, which a destroy could wait for.
    if (comm && !aborted) {
      if (retired) nccl.comm_abort(comm);
      else nccl.comm_destroy(comm);
    }
    if (word) cudaFree(word);
    if (done) cudaEventDestroy(done);
    if (stream) cudaStreamDestroy(stream);
  }

  void check(ncclResult_t result, std::string_view what) const {
    if (result != ncclSuccess && result != ncclInProgress) {
      throw make_error(ErrorCode::Internal, "rank {}: {} failed: {}", rank, what, nccl.get_error_string(result));
    }
  }

  // Waits until the communicator has no operation in progress, or aborts it at `deadline`.
  void settle(Clock::time_point deadline, std::string_view what) {
    for (;;) {
      give_up_if_retired(what);
      ncclResult_t state = ncclSuccess;
      check(nccl.comm_get_async_error(comm, &state), "ncclCommGetAsyncError");
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) {
        abort_with(make_error(ErrorCode::Internal, "rank {}: {} failed: {}; the communicator is aborted", rank, what,
                              nccl.get_error_string(state)));
      }
      if (Clock::now() >= deadline) {
        abort_with(make_error(ErrorCode::Timeout, "rank {}: {} did not finish within {} ms (a rank is gone or stalled); "
                              "the communicator is aborted", rank, what, timeout.count()));
      }
      std::this_thread::yield();
    }
  }

  void require_live(std::string_view what) {
    if (aborted) {
      throw make_error(ErrorCode::Internal, "rank {}: the NCCL communicator was aborted; the leader must initialise a new one",
                       rank);
    }
    give_up_if_retired(what);
  }

  void give_up_if_retired(std::string_view what) {
    if (retired) {
      abort_with(make_error(ErrorCode::Cancelled, "rank {}: {} was given up: a new communicator replaced this one, which "
                            "is aborted", rank, what));
    }
  }

  [[noreturn]] void abort_with(const Error& error) {
    if (!aborted.exchange(true)) {
      log().error("{}", error.message());
      nccl.comm_abort(comm);
    }
    throw error;
  }
};

bool NcclCommunicator::available(std::string& reason) {
  if (cuda::device_count() == 0) {
    reason = "no CUDA device: " + cuda::unavailable_reason();
    return false;
  }
  return nccl::Library::get(reason) != nullptr;
}

std::string NcclCommunicator::new_unique_id() {
  ncclUniqueId id{};
  const ncclResult_t result = library().get_unique_id(&id);
  if (result != ncclSuccess) throw make_error(ErrorCode::Internal, "ncclGetUniqueId failed: {}", library().get_error_string(result));
  return to_hex(id);
}

NcclCommunicator::NcclCommunicator(const std::string& unique_id, int rank, int world_size, int device,
                                   std::chrono::milliseconds timeout, bool blocking)
    : impl_(std::make_unique<Impl>()) {
  if (world_size <= 0 || rank < 0 || rank >= world_size) {
    throw make_error(ErrorCode::InvalidArgument, "NCCL config: rank {} is outside [0, world_size={})", rank, world_size);
  }
  const ncclUniqueId id = from_hex(unique_id);
  Impl& s = *impl_;
  s.rank = rank;
  s.world_size = world_size;
  s.device = device;
  s.timeout = timeout;
  cuda::require_device(static_cast<std::uint32_t>(device));
  cuda::DeviceGuard guard(device);
  cuda::check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags (NCCL)");
  cuda::check(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate (NCCL)");
  cuda::check(cudaMalloc(reinterpret_cast<void**>(&s.word), sizeof(std::int32_t)), "cudaMalloc (NCCL word)");
  if (blocking) {
    // The join blocks until every rank is there: on a thread of its own, waited for with the
    // deadline. One that times out is left to finish (or not) on its own.
    struct Join {
      std::mutex mutex;
      std::condition_variable done;
      bool finished = false;
      ncclResult_t result = ncclSuccess;
      ncclComm_t comm = nullptr;
    };
    auto join = std::make_shared<Join>();
    std::thread([join, &nccl = s.nccl, world_size, id, rank, device] {
      cudaSetDevice(device);
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 1;
      ncclComm_t comm = nullptr;
      const ncclResult_t result = nccl.comm_init_rank_config(&comm, world_size, id, rank, &config);
      std::lock_guard lock(join->mutex);
      join->finished = true;
      join->result = result;
      join->comm = comm;
      join->done.notify_all();
    }).detach();
    std::unique_lock lock(join->mutex);
    if (!join->done.wait_for(lock, timeout, [&] { return join->finished; })) {
      throw make_error(ErrorCode::Timeout, "rank {}: not every rank joined the NCCL communicator within {} ms", rank,
                       timeout.count());
    }
    s.check(join->result, "ncclCommInitRankConfig");
    s.comm = join->comm;
  } else {
    // Non-blocking: the join can be waited for with a deadline and aborted.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    s.check(s.nccl.comm_init_rank_config(&s.comm, world_size, id, rank, &config), "ncclCommInitRankConfig");
    s.settle(Clock::now() + timeout, "joining the NCCL communicator");
  }
  log().info("rank {}/{}: NCCL communicator on device {} ready ({})", rank, world_size, device, s.nccl.path);
}

NcclCommunicator::~NcclCommunicator() = default;

void NcclCommunicator::enqueue_broadcast(std::span<const std::pair<void*, std::size_t>> buffers, int root, void* after) {
  Impl& s = *impl_;
  s.require_live("the broadcast");
  if (root < 0 || root >= s.world_size) {
    throw make_error(ErrorCode::InvalidArgument, "broadcast root {} is outside [0, {})", root, s.world_size);
  }
  cuda::DeviceGuard guard(s.device);
  if (after) cuda::check(cudaStreamWaitEvent(s.stream, static_cast<cudaEvent_t>(after), 0), "cudaStreamWaitEvent (NCCL)");
  s.check(s.nccl.group_start(), "ncclGroupStart");
  for (const auto& [address, bytes] : buffers) {
    s.check(s.nccl.broadcast(address, address, bytes, ncclUint8, root, s.comm, s.stream), "ncclBroadcast");
  }
  s.check(s.nccl.group_end(), "ncclGroupEnd");
  s.settle(Clock::now() + s.timeout, "enqueueing the broadcast");
}

void NcclCommunicator::wait_event(void* event) {
  Impl& s = *impl_;
  const auto deadline = Clock::now() + s.timeout;
  for (;;) {
    const cudaError_t state = cudaEventQuery(static_cast<cudaEvent_t>(event));
    if (state == cudaSuccess) return;
    if (state != cudaErrorNotReady) cuda::check(state, "the broadcast's stream");
    s.settle(deadline, "the broadcast");  // NCCL's own errors, the deadline, and retirement
    if (Clock::now() >= deadline) {
      s.abort_with(make_error(ErrorCode::Timeout, "rank {}: the broadcast did not finish within {} ms (a rank is gone or "
                              "stalled); the communicator is aborted", s.rank, s.timeout.count()));
    }
    std::this_thread::yield();
  }
}

void NcclCommunicator::synchronize() {
  Impl& s = *impl_;
  cuda::DeviceGuard guard(s.device);
  cuda::check(cudaEventRecord(s.done, s.stream), "cudaEventRecord (NCCL)");
  wait_event(s.done);
}

void NcclCommunicator::broadcast(std::span<const std::pair<void*, std::size_t>> buffers, int root) {
  enqueue_broadcast(buffers, root);
  synchronize();
}

void* NcclCommunicator::stream() const { return impl_->stream; }

bool NcclCommunicator::all_ok(bool ok) {
  Impl& s = *impl_;
  s.require_live("the agreement");
  cuda::DeviceGuard guard(s.device);
  std::int32_t value = ok ? 1 : 0;
  // Plain copies before and after, never queued behind the collective: a copy to pageable
  // memory queued after an all-reduce that never ends would block this thread past any timeout.
  cuda::copy_to_device(s.word, &value, sizeof(value));
  s.check(s.nccl.all_reduce(s.word, s.word, 1, ncclInt32, ncclMin, s.comm, s.stream), "ncclAllReduce");
  s.settle(Clock::now() + s.timeout, "enqueueing the agreement");
  synchronize();
  cuda::copy_to_host(&value, s.word, sizeof(value));
  return value == 1;
}

void NcclCommunicator::retire() { impl_->retired = true; }

int NcclCommunicator::rank() const { return impl_->rank; }
int NcclCommunicator::world_size() const { return impl_->world_size; }
int NcclCommunicator::device() const { return impl_->device; }
bool NcclCommunicator::aborted() const { return impl_->aborted; }

}  // namespace kvbm
