#include "transfer/backends/cuda/cuda_executors.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <map>
#include <mutex>

#include "common/make_error.hpp"
#include "platform/cuda_check.hpp"
#include "platform/cuda_runtime.hpp"
#include "transfer/backends/cuda/block_list.hpp"
#include "transfer/backends/cuda/cuda_batching.hpp"
#include "transfer/backends/cuda/copy_kernel.hpp"
#include "transfer/backends/cuda/event_completions.hpp"
#include "transfer/backends/cuda/pinned_scratch.hpp"
#include "transfer/backends/cuda/stream_fence.hpp"
#include "transfer/backends/cuda/stream_progress.hpp"

namespace kvbm {
namespace {

enum class Direction { HostToDevice, DeviceToHost, DeviceToDevice };

// Runs copies for one GPU and direction on a stream of its own.
class CudaStreamExecutor final : public CudaExecutor {
 public:
  CudaStreamExecutor(int device, Direction direction, const CudaOptions& options, const SpinBudgets& spin)
      : device_(device), direction_(direction), config_(options), spin_(spin) {
    cuda::DeviceGuard guard(device_);
    // The kernel path takes turns on kernel_streams, the copy engine spreads a batch over
    // copy_engine_streams; Auto may do either, on the same streams.
    const bool kernel = config_.copy_path != CudaCopyPath::CopyEngine;
    const bool copy_engine = config_.copy_path != CudaCopyPath::Kernel;
    kernel_lanes_ = kernel ? static_cast<std::size_t>(config_.kernel_streams) : 1;
    copy_engine_lanes_ = copy_engine ? static_cast<std::size_t>(config_.copy_engine_streams) : 1;
    const std::size_t streams = std::max(kernel_lanes_, copy_engine_lanes_);
    for (std::size_t i = 0; i < streams; ++i) {
      cudaStream_t stream = nullptr;
      cuda::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
      streams_.push_back(stream);
    }
    const bool upload = direction_ == Direction::DeviceToDevice ? config_.upload_device_descriptors : config_.upload_descriptors;
    if (kernel && upload) {
      cuda::check(cudaStreamCreateWithFlags(&upload_stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags (upload)");
    }
    cuda::check(cudaEventCreateWithFlags(&handoff_, cudaEventDisableTiming), "cudaEventCreate (handoff)");
    // Descriptor lists come from a pool of kvbm's own that keeps its memory between transfers
    // (the default pool's release threshold of 0 would hand it back, and re-map it, every time).
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device_;
    cuda::check(cudaMemPoolCreate(&descriptor_pool_, &props), "cudaMemPoolCreate");
    std::uint64_t keep_everything = UINT64_MAX;
    cuda::check(cudaMemPoolSetAttribute(descriptor_pool_, cudaMemPoolAttrReleaseThreshold, &keep_everything),
                "cudaMemPoolSetAttribute(release threshold)");
    // A list is freed on the copy stream after its kernel and the next is allocated on the upload
    // stream. Reusing the freed block could make the upload wait for that kernel (the pool would
    // add the dependency), which the side stream is there to avoid: take fresh memory instead.
    // Lists are small, so the pool stays small. Optional: the pool is correct either way.
    int no_waits = 0;
    if (cudaMemPoolSetAttribute(descriptor_pool_, cudaMemPoolReuseAllowInternalDependencies, &no_waits) != cudaSuccess) {
      (void)cudaGetLastError();
    }
    // A progress word per stream that submissions end on: every lane of the kernel path, the
    // first stream of the copy-engine path (its other streams are joined into the first).
    progress_.resize(kernel_lanes_);
    for (std::size_t i = 0; i < progress_.size(); ++i) progress_[i] = cuda::StreamProgress::create(streams_[i]);
    if (direction_ == Direction::DeviceToDevice && kernel) {
      // Device-internal copies do not cross PCIe: give them every SM.
      cudaDeviceGetAttribute(&d2d_ctas_, cudaDevAttrMultiProcessorCount, device_);
    }
  }

  ~CudaStreamExecutor() override {
    completions_.reset();  // drains the queue: every callback has run
    progress_.clear();
    for (cudaStream_t stream : streams_) cudaStreamDestroy(stream);
    if (upload_stream_) cudaStreamDestroy(upload_stream_);
    cudaEventDestroy(handoff_);
    cudaMemPoolDestroy(descriptor_pool_);
  }

  void submit(CopyOps ops, DoneCallback done) override {
    submit_guarded(ops.empty(), done, [&] {
      std::size_t bytes = 0;
      for (const CopyOp& op : ops) bytes += op.bytes;
      if (resolve_copy_path(config_, bytes / ops.size(), direction_ == Direction::DeviceToDevice) == CudaCopyPath::CopyEngine) {
        submit_copy_engine(ops, done);
      } else {
        submit_kernel(ops, done);
      }
    });
  }

  void submit_blocks(const BlockGeometry& geometry, std::span<const BlockPair> pairs, DoneCallback done) override {
    submit_guarded(pairs.empty(), done, [&] {
      if (config_.copy_path == CudaCopyPath::CopyEngine) {
        throw make_error(ErrorCode::Internal, "block pairs sent to the copy-engine path");
      }
      submit_block_pairs(geometry, pairs, done);
    });
  }

  // Submissions are queued on the submitting thread, so the streams already hold everything
  // submitted before this call (the descriptor uploads too: the kernel streams wait for them).
  GpuFence fence() override {
    std::lock_guard lock(stream_mutex_);
    cuda::DeviceGuard guard(device_);
    return cuda::record_fence(streams_);
  }

 private:
  // Runs `submit()`, or reports an empty submission done at once.
  template <typename Submit>
  void submit_guarded(bool empty, DoneCallback& done, Submit&& submit) {
    if (empty) {
      done(Status{});
      return;
    }
    try {
      submit();
    } catch (const Error& error) {
      // A step after a launch failed (an event, a join): the copy may still be running, and
      // the caller may free its memory once it hears of the failure. Let the streams drain first.
      drain_streams();
      done(error);
    }
  }

  // Calls `emit(descriptor)` for each piece of at most kMaxDescriptorBytes.
  template <typename Emit>
  static void for_each_descriptor(const CopyOps& ops, Emit&& emit) {
    for_each_piece(ops, cuda::kMaxDescriptorBytes, [&](const CopyOp& piece) {
      emit(cuda::CopyDescriptor{piece.src.address(), piece.dst.address(), piece.bytes});
    });
  }

  int cta_budget() const { return direction_ == Direction::DeviceToDevice ? d2d_ctas_ : config_.copy_ctas; }

  int ctas_for(std::size_t descriptors) const {
    const int ctas = cta_budget();
    // One warp per descriptor at most: a short list needs no more CTAs than it has warps' work.
    const std::size_t useful = (descriptors * 32 + config_.copy_threads - 1) / config_.copy_threads;
    return static_cast<int>(std::min<std::size_t>(ctas, std::max<std::size_t>(1, useful)));
  }

  void submit_inline(const CopyOps& ops, std::size_t count, DoneCallback& done) {
    std::array<cuda::CopyDescriptor, cuda::kMaxInlineDescriptors> list;
    cuda::CopyDescriptor* next = list.data();
    std::size_t bytes = 0;
    for_each_descriptor(ops, [&](const cuda::CopyDescriptor& d) {
      *next++ = d;
      bytes += d.bytes;
    });
    const std::size_t warps = static_cast<std::size_t>(cta_budget()) * static_cast<std::size_t>(config_.copy_threads) / 32;
    const std::uint32_t split = cuda::inline_split(count, bytes, warps);
    std::lock_guard lock(stream_mutex_);
    cuda::DeviceGuard guard(device_);
    const std::size_t lane = next_lane();
    const int ctas = ctas_for(count * split);
    // The kernel writes the lane's progress word itself: no event and no memory operation to
    // queue after it (see KernelSignal). Without stream memory operations there is no word,
    // and an event is recorded as for the other launches.
    cuda::StreamProgress* progress = progress_[lane].get();
    const cuda::KernelSignal signal = progress ? progress->kernel_signal() : cuda::KernelSignal{};
    cuda::check(cuda::launch_inline_copy_kernel(list.data(), static_cast<std::uint32_t>(count), ctas,
                                                config_.copy_threads, streams_[lane], signal, split),
                [&] {
                  return fmt::format("copy kernel launch ({} CTAs x {} threads, {} inline descriptors in {} parts each)",
                                     ctas, config_.copy_threads, count, split);
                });
    if (progress) completions_->watch_signal(streams_[lane], std::move(done), *progress, signal.number);
    else watch_on(lane, std::move(done));
  }

  void submit_kernel(const CopyOps& ops, DoneCallback& done) {
    const std::size_t count = count_pieces(ops, cuda::kMaxDescriptorBytes);
    if (count <= cuda::kMaxInlineDescriptors) return submit_inline(ops, count, done);
    const auto fill = [&](void* memory) {
      auto* descriptors = static_cast<cuda::CopyDescriptor*>(memory);
      for_each_descriptor(ops, [&](const cuda::CopyDescriptor& d) { *descriptors++ = d; });
    };
    const auto launch = [&](const void* list, cudaStream_t stream) {
      const int ctas = ctas_for(count);
      cuda::check(cuda::launch_copy_kernel(static_cast<const cuda::CopyDescriptor*>(list),
                                           static_cast<std::uint32_t>(count), ctas, config_.copy_threads, stream),
                  [&] { return fmt::format("copy kernel launch ({} CTAs x {} threads)", ctas, config_.copy_threads); });
    };
    submit_with_list(count * sizeof(cuda::CopyDescriptor), fill, launch, done);
  }

  void submit_block_pairs(const BlockGeometry& geometry, std::span<const BlockPair> pairs, DoneCallback& done) {
    const auto fill = [&](void* memory) { cuda::write_block_list(geometry, pairs, memory); };
    const std::size_t items = pairs.size() * geometry.src_slots.size() * cuda::descriptors_per_chunk(geometry.slot_bytes);
    const auto launch = [&](const void* list, cudaStream_t stream) {
      const int ctas = ctas_for(items);
      cuda::check(cuda::launch_block_copy_kernel(cuda::block_list_at(list, geometry, pairs.size()), ctas,
                                                 config_.copy_threads, stream),
                  [&] {
                    return fmt::format("block-pair copy kernel launch ({} CTAs x {} threads, {} pairs x {} slots)", ctas,
                                       config_.copy_threads, pairs.size(), geometry.src_slots.size());
                  });
    };
    submit_with_list(cuda::block_list_bytes(geometry, pairs.size()), fill, launch, done);
  }

  // Writes a kernel's list of `bytes` into pinned memory with `fill(memory)`, then, on the next
  // stream, calls `launch(list, stream)` with the list uploaded to the device or, when lists are
  // read in place, where it was written. The list is kept until the kernel has finished.
  template <typename Fill, typename Launch>
  void submit_with_list(std::size_t bytes, Fill&& fill, Launch&& launch, DoneCallback& done) {
    // Written straight into pinned memory: this is on the submitting thread's critical path.
    auto scratch = scratch_.take(bytes);
    fill(scratch.second);

    std::lock_guard lock(stream_mutex_);
    cuda::DeviceGuard guard(device_);
    const std::size_t lane = next_lane();
    cudaStream_t stream = streams_[lane];
    // Without the upload, the kernel reads the list where it was written (pinned memory is
    // reachable from the device at the same address): three API calls fewer per batch.
    const void* list = scratch.second;
    void* device_list = nullptr;
    try {
      if (upload_stream_) {
        // The list goes up on a stream of its own, so it travels while the previous batch's kernel
        // still runs: on the copy stream it would wait for that kernel, and the next would wait for it.
        cuda::check(cudaMallocFromPoolAsync(&device_list, bytes, descriptor_pool_, upload_stream_),
                    "cudaMallocFromPoolAsync (kernel list)");
        cuda::check(cudaMemcpyAsync(device_list, scratch.second, bytes, cudaMemcpyHostToDevice, upload_stream_),
                    "cudaMemcpyAsync (kernel list)");
        make_wait_for(stream, upload_stream_);
        list = device_list;
      }
      launch(list, stream);
      if (device_list) {
        cuda::check(cudaFreeAsync(device_list, stream), "cudaFreeAsync (kernel list)");
        device_list = nullptr;
      }
    } catch (...) {
      if (device_list) cudaFreeAsync(device_list, upload_stream_);
      // The upload, or a kernel reading the list in place, may still be reading the scratch
      // (submit() drains every stream before it reports the error anyway).
      drain_streams();
      scratch_.give(scratch);
      throw;
    }
    watch_on(lane, [this, scratch, done = std::move(done)](Status status) {
      scratch_.give(scratch);
      done(std::move(status));
    });
  }

  // Below this average size, host-to-device copies go on one stream. Small copies that read host
  // memory ran faster from one stream than spread over several (H100, 1024-copy calls: 16 KiB
  // 0.41-0.43 of the ceiling on one stream, 0.20-0.22 on two; 4 KiB 0.13-0.14 against
  // 0.09-0.12), while from 64 KiB up two streams win (0.90-0.94 against 0.85-0.90).
  // Device-to-host copies (posted writes) do as well or better on several at every size.
  static constexpr std::size_t kSmallHostReadBytes = 64u << 10;

  void submit_copy_engine(const CopyOps& ops, DoneCallback& done) {
    // Spread the ops over the streams by bytes, so several copy engines can work at once.
    std::size_t total = 0;
    for (const CopyOp& op : ops) total += op.bytes;
    const bool small_host_reads = direction_ == Direction::HostToDevice && total / ops.size() < kSmallHostReadBytes;
    const std::size_t streams = small_host_reads ? 1 : copy_engine_lanes_;
    const std::size_t share = total / streams + 1;
    std::lock_guard lock(stream_mutex_);
    cuda::DeviceGuard guard(device_);
    cudaMemcpyAttributes attributes{};
    attributes.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    std::size_t attribute_index = 0;
    std::size_t next = 0;
    for (std::size_t s = 0; s < streams && next < ops.size(); ++s) {
      std::vector<void*> dsts;
      std::vector<const void*> srcs;
      std::vector<std::size_t> sizes;
      std::size_t filled = 0;
      for (; next < ops.size() && (filled < share || s + 1 == streams); ++next) {
        dsts.push_back(ops[next].dst.address());
        srcs.push_back(ops[next].src.address());
        sizes.push_back(ops[next].bytes);
        filled += ops[next].bytes;
      }
      // In calls of at most copy_engine_call_copies: one call of tens of thousands of small copies
      // runs at a fraction of the speed of the same copies in calls of a thousand (measured).
      for (std::size_t first = 0; first < dsts.size(); first += config_.copy_engine_call_copies) {
        const std::size_t count = std::min(config_.copy_engine_call_copies, dsts.size() - first);
        const cudaError_t result = cudaMemcpyBatchAsync(dsts.data() + first, srcs.data() + first, sizes.data() + first,
                                                        count, &attributes, &attribute_index, 1, streams_[s]);
        cuda::check(result, [&] { return fmt::format("cudaMemcpyBatchAsync of {} copies", count); });
      }
      if (s > 0) make_wait_for(streams_.front(), streams_[s]);
    }
    watch_on(0, std::move(done));
  }

  // Waits for everything queued on this executor's streams (error paths only; a stream knows
  // its device, and the stream handles never change, so neither the device nor the lock is needed).
  void drain_streams() {
    for (cudaStream_t stream : streams_) cudaStreamSynchronize(stream);
    if (upload_stream_) cudaStreamSynchronize(upload_stream_);
  }

  // Makes `waiter` wait for everything queued so far on `other` (a descriptor upload, or a
  // copy-engine share). One event serves every hand-off: they all happen under stream_mutex_,
  // and a wait takes the event's state at the time of the call.
  void make_wait_for(cudaStream_t waiter, cudaStream_t other) {
    cuda::check(cudaEventRecord(handoff_, other), "cudaEventRecord (hand-off)");
    cuda::check(cudaStreamWaitEvent(waiter, handoff_, 0), "cudaStreamWaitEvent (hand-off)");
  }

  // The kernel stream for the next batch (under stream_mutex_): they take turns.
  std::size_t next_lane() { return turn_++ % kernel_lanes_; }

  // Called under stream_mutex_, with everything of this submission queued on streams_[lane].
  void watch_on(std::size_t lane, std::function<void(Status)> callback) {
    cudaStream_t stream = streams_[lane];
    cudaEvent_t event = completions_->take_event();
    const cudaError_t recorded = cudaEventRecord(event, stream);
    if (recorded != cudaSuccess) cudaEventDestroy(event);
    cuda::check(recorded, "cudaEventRecord");
    // After the event: the word reaching this number means the event has fired too.
    cuda::StreamProgress* progress = progress_[lane].get();
    const std::uint64_t number = progress ? progress->advance(stream) : 0;
    completions_->watch(event, std::move(callback), progress, number);
  }

  int device_;
  Direction direction_;
  CudaOptions config_;
  SpinBudgets spin_;
  int d2d_ctas_ = 0;
  std::vector<cudaStream_t> streams_;     // kernel path: the first kernel_lanes_ taken in turns;
                                          // copy-engine path: one batch spread over the first copy_engine_lanes_
  std::size_t kernel_lanes_ = 1;
  std::size_t copy_engine_lanes_ = 1;
  std::size_t turn_ = 0;                  // see next_lane
  cudaStream_t upload_stream_ = nullptr;  // descriptor lists (kernel path, when they are uploaded)
  cudaEvent_t handoff_ = nullptr;         // see make_wait_for
  cudaMemPool_t descriptor_pool_ = nullptr;
  std::mutex stream_mutex_;
  cuda::PinnedScratch scratch_;
  // Per stream that submissions end on; null where the driver has no stream memory operations.
  std::vector<std::unique_ptr<cuda::StreamProgress>> progress_;
  std::unique_ptr<cuda::EventCompletions> completions_ =
      std::make_unique<cuda::EventCompletions>(spin_.cuda_event, spin_.cuda_progress, spin_.cuda_idle);
};

class CudaExecutorRegistry final : public CudaExecutors {
 public:
  CudaExecutorRegistry(const CudaOptions& options, const SpinBudgets& spin) : config_(options), spin_(spin) {}

  CudaExecutor& executor(StorageKind src, StorageKind dst) override {
    if (!src.is_device() && !dst.is_device()) {
      throw make_error(ErrorCode::Internal, "CUDA executor asked for {} -> {}", src.to_string(), dst.to_string());
    }
    for (StorageKind host : {src, dst}) {
      if (host.type() == StorageKind::Type::System) {
        throw make_error(ErrorCode::InvalidArgument,
                         "a direct CUDA copy needs pinned host memory, but one side is {} (pageable)", host.to_string());
      }
    }
    const Direction direction = !src.is_device()   ? Direction::HostToDevice
                                : !dst.is_device() ? Direction::DeviceToHost
                                                   : Direction::DeviceToDevice;
    const int device = static_cast<int>(src.is_device() ? src.index() : dst.index());
    if (direction == Direction::DeviceToDevice && src.index() != dst.index()) enable_peer_access(src.index(), dst.index());
    std::lock_guard lock(mutex_);
    auto& slot = executors_[{device, direction}];
    if (!slot) {
      cuda::require_device(static_cast<std::uint32_t>(device));
      slot = std::make_unique<CudaStreamExecutor>(device, direction, config_, spin_);
    }
    return *slot;
  }

 private:
  // The copy kernel reads the peer's memory through UVA: that needs peer access.
  void enable_peer_access(std::uint32_t from, std::uint32_t to) {
    int can_access = 0;
    cuda::check(cudaDeviceCanAccessPeer(&can_access, static_cast<int>(from), static_cast<int>(to)),
                "cudaDeviceCanAccessPeer");
    if (!can_access) {
      throw make_error(ErrorCode::Unsupported, "device {} cannot access device {} directly (no peer access)", from, to);
    }
    cuda::DeviceGuard guard(static_cast<int>(from));
    const cudaError_t result = cudaDeviceEnablePeerAccess(static_cast<int>(to), 0);
    if (result == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
    else cuda::check(result, fmt::format("cudaDeviceEnablePeerAccess({} -> {})", from, to));
  }

  CudaOptions config_;
  SpinBudgets spin_;
  std::mutex mutex_;
  std::map<std::pair<int, Direction>, std::unique_ptr<CudaStreamExecutor>> executors_;
};

}  // namespace

std::unique_ptr<CudaExecutors> make_cuda_executors(const CudaOptions& options, const SpinBudgets& spin) {
  return std::make_unique<CudaExecutorRegistry>(options, spin);
}

}  // namespace kvbm
