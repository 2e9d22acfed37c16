#include "kvbm/transfer/transfer_context.hpp"

#include <algorithm>
#include <condition_variable>
#include <optional>
#include <thread>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "common/thread_pool.hpp"
#include "platform/cuda_runtime.hpp"
#include "transfer/backends/cuda/cuda_batching.hpp"
#include "transfer/backends/cuda/cuda_executors.hpp"
#include "transfer/backends/disk/disk_executor.hpp"
#include "transfer/backends/gds/gds_executor.hpp"
#include "transfer/backends/memcpy/memcpy_executor.hpp"
#include "transfer/engine/batch_sizes.hpp"
#include "transfer/engine/block_geometry.hpp"
#include "transfer/engine/bounce_pool.hpp"
#include "transfer/engine/expand.hpp"
#include "transfer/engine/join.hpp"
#include "transfer/engine/request_validator.hpp"
#include "transfer/engine/two_hop.hpp"

namespace kvbm {

void TransferConfig::validate() const {
  const auto require = [](bool ok, std::string_view field, std::size_t value, std::string_view rule) {
    if (!ok) throw make_error(ErrorCode::InvalidArgument, "transfer config {}={} {}", field, value, rule);
  };
  require(max_transfer_batch_size > 0, "max_transfer_batch_size", max_transfer_batch_size, "must be > 0");
  require(memcpy_threads <= 256, "memcpy_threads", memcpy_threads, "must be at most 256 (0: min(4, cores))");
  require(memcpy_parallel_bytes > 0, "memcpy_parallel_bytes", memcpy_parallel_bytes, "must be > 0");
  require(bounce_buffer_bytes > 0 && bounce_buffer_bytes % kDirectIoAlignment == 0, "bounce_buffer_bytes",
          bounce_buffer_bytes, "must be a positive multiple of 4096");
  require(bounce_buffers > 0, "bounce_buffers", bounce_buffers, "must be > 0");
  if (latency != LatencyPolicy::Low && latency != LatencyPolicy::Balanced && latency != LatencyPolicy::LowCpu) {
    throw make_error(ErrorCode::InvalidArgument, "transfer config latency={} is not a policy", static_cast<int>(latency));
  }
  disk.validate();
  cuda.validate();
}

struct TransferContext::Impl {
  static constexpr std::size_t kGdsThreads = 8;  // cuFile calls block: this many run at once

  // The config checked, with its automatic values filled in.
  static TransferConfig resolved(TransferConfig config) {
    if (config.memcpy_threads == 0) {
      config.memcpy_threads = std::min<std::size_t>(4, std::max(1u, std::thread::hardware_concurrency()));
    }
    return config;
  }

  explicit Impl(TransferConfig config)
      : config(resolved(std::move(config))),
        pool(this->config.memcpy_threads),
        memcpy(pool, this->config.memcpy_parallel_bytes),
        disk_backend(make_disk_backend(this->config.disk)),
        disk(*disk_backend, this->config.disk.io_bytes) {
    if (this->config.capabilities.allow_gds) {
      std::string reason;
      gds = make_gds_executor(
          kGdsThreads, this->config.disk.io_bytes,
          [this](CopyOps ops, DoneCallback done) { run_without_gds(std::move(ops), std::move(done)); },
          this->config.cufile_library, reason);
      if (!gds) {
        // GDS is a capability, not a requirement: without it, device <-> disk is planned as the
        // two-hop through pinned memory, and config() says so.
        log().warn("allow_gds is set but GPUDirect Storage is unavailable ({}): device <-> disk goes through pinned memory",
                   reason);
        this->config.capabilities.allow_gds = false;
      }
    }
  }

  ~Impl() {
    std::unique_lock lock(mutex);
    idle.wait(lock, [&] { return active == 0; });
  }

  // The bounce pool is made on first use: plain host transfers never pay for it.
  BouncePool& bounce_pool() {
    std::call_once(bounce_once, [&] {
      const std::size_t bytes = config.bounce_buffer_bytes * config.bounce_buffers;
      RegionPtr region;
      if (cuda::device_count() > 0) {
        region = Region::allocate_pinned(bytes);
      } else {
        log().info("no CUDA device: bounce buffers are plain page-aligned host memory");
        region = Region::allocate_system(bytes);
      }
      bounce = std::make_unique<BouncePool>(std::move(region), config.bounce_buffer_bytes, config.bounce_buffers);
    });
    return *bounce;
  }

  CudaExecutors& cuda() {
    std::call_once(cuda_once, [&] {
      cuda_executors = make_cuda_executors(config.cuda, spin_budgets(config.latency));
    });
    return *cuda_executors;
  }

  Executor& executor_for(TransferStrategy strategy, StorageKind src, StorageKind dst) {
    switch (strategy) {
      case TransferStrategy::Memcpy: return memcpy;
      case TransferStrategy::CudaAsyncH2D:
      case TransferStrategy::CudaAsyncD2H:
      case TransferStrategy::CudaAsyncD2D: return cuda().executor(src, dst);
      case TransferStrategy::NixlWrite:
      case TransferStrategy::NixlRead:
      case TransferStrategy::NixlReadFlipped:
        if (gds && (src.is_device() || dst.is_device()) && (src.is_disk() || dst.is_disk())) return *gds;
        if (src.is_disk() != dst.is_disk() && !src.is_device() && !dst.is_device()) return disk;
        break;
      default: break;
    }
    throw make_error(ErrorCode::Unsupported, "no executor in this build for {} from {} to {}", to_string(strategy),
                     src.to_string(), dst.to_string());
  }

  // Where cuFile refuses a file: the ops run under the plan kvbm makes without GDS (the
  // two-hop through pinned memory).
  void run_without_gds(CopyOps ops, DoneCallback done) {
    if (ops.empty()) return done(Status{});
    const StorageKind src = ops.front().src.region->kind();
    const StorageKind dst = ops.front().dst.region->kind();
    try {
      const TransferPlan plan = execution_plan(select_strategy(src, true, dst, true, config.capabilities.with_gds(false)));
      run_plan(plan, src, dst, std::move(ops), std::move(done));
    } catch (const Error& error) {
      done(error);
    }
  }

  // Starts one batch's ops under `plan`; `done` runs when they have all finished.
  void run_plan(const TransferPlan& plan, StorageKind src, StorageKind dst, CopyOps ops, DoneCallback done) {
    if (const auto* direct = std::get_if<DirectPlan>(&plan)) {
      executor_for(direct->strategy, src, dst).submit(std::move(ops), std::move(done));
      return;
    }
    const auto& hop = std::get<TwoHopPlan>(plan);
    BouncePool& bounce_buffers = bounce_pool();
    Executor& first = executor_for(hop.first, src, bounce_buffers.kind());
    Executor& second = executor_for(hop.second, bounce_buffers.kind(), dst);
    run_two_hop(std::move(ops), first, second, bounce_buffers, std::move(done));
  }

  // The geometry the block-pair kernel needs, where this path's batches can take it.
  std::optional<BlockGeometry> path_geometry(const TransferPlan& plan, const Layout& src, const Layout& dst) const {
    if (!is_direct_cuda_copy(plan) || !wants_block_pairs(config.cuda, src, dst)) return std::nullopt;
    return block_geometry(src, dst);
  }

  // Makes what `plan` runs on now (CUDA streams, the bounce pool), so that a path's first
  // transfer pays for nothing, and a kind this build cannot move is an error at once.
  void make_executors(const TransferPlan& plan, StorageKind src, StorageKind dst) {
    if (const auto* direct = std::get_if<DirectPlan>(&plan)) {
      (void)executor_for(direct->strategy, src, dst);
      return;
    }
    const auto& hop = std::get<TwoHopPlan>(plan);
    BouncePool& bounce_buffers = bounce_pool();
    (void)executor_for(hop.first, src, bounce_buffers.kind());
    (void)executor_for(hop.second, bounce_buffers.kind(), dst);
  }

  // Starts one checked batch: as block pairs where the kernel locates the chunks itself (a batch
  // too long to travel inline in the launch, whose blocks do not merge into larger copies), or
  // expanded into copy ops.
  void run_batch(const TransferPlan& plan, const Layout& src, const Layout& dst, const BlockGeometry* geometry,
                 std::span<const BlockPair> pairs, DoneCallback done) {
    if (geometry && pairs.size() > kernel_inline_blocks(src) && !runs_would_merge(*geometry, pairs)) {
      cuda().executor(src.kind(), dst.kind()).submit_blocks(*geometry, pairs, std::move(done));
      return;
    }
    run_plan(plan, src.kind(), dst.kind(), expand_pairs(src, dst, pairs), std::move(done));
  }

  void begin() {
    std::lock_guard lock(mutex);
    ++active;
  }
  void end() {
    std::lock_guard lock(mutex);
    if (--active == 0) idle.notify_all();
  }

  TransferConfig config;
  ThreadPool pool;
  MemcpyExecutor memcpy;
  std::unique_ptr<DiskBackend> disk_backend;
  DiskExecutor disk;
  std::unique_ptr<Executor> gds;  // set when allow_gds is and libcufile loads
  std::once_flag bounce_once;
  std::unique_ptr<BouncePool> bounce;
  std::once_flag cuda_once;
  std::unique_ptr<CudaExecutors> cuda_executors;
  std::mutex mutex;
  std::condition_variable idle;
  std::size_t active = 0;
};

TransferContext::TransferContext(TransferConfig config) {
  config.validate();
  impl_ = std::make_unique<Impl>(std::move(config));
}

TransferContext::~TransferContext() = default;

const TransferConfig& TransferContext::config() const { return impl_->config; }

std::string TransferContext::disk_backend_name() const { return impl_->disk_backend->name(); }

TransferPlan TransferContext::plan(const Layout& src, const Layout& dst) const {
  return execution_plan(select_strategy(src.kind(), true, dst.kind(), true, impl_->config.capabilities));
}

struct TransferPath::Prepared {
  LayoutPtr src;
  LayoutPtr dst;
  TransferPlan plan;
  std::optional<BlockGeometry> geometry;  // for batches too long to travel inline in a launch
};

TransferPath::TransferPath(TransferContext& context, std::shared_ptr<const Prepared> prepared)
    : context_(&context), prepared_(std::move(prepared)) {}

TransferHandle TransferPath::post(std::span<const BlockPair> pairs, CompletionCallback on_complete) const {
  return context_->start(*prepared_, pairs, std::move(on_complete));
}
GpuFence TransferPath::fence() const { return context_->fence(*prepared_); }
const TransferPlan& TransferPath::plan() const { return prepared_->plan; }
const LayoutPtr& TransferPath::src() const { return prepared_->src; }
const LayoutPtr& TransferPath::dst() const { return prepared_->dst; }

TransferPath::Prepared TransferContext::make_prepared(const LayoutPtr& src, const LayoutPtr& dst, bool with_geometry) {
  if (!src || !dst) throw make_error(ErrorCode::InvalidArgument, "transfer: layout is null");
  (void)RequestValidator(*src, *dst, {});  // the pair itself: layouts of one shape
  TransferPath::Prepared prepared{src, dst, plan(*src, *dst), std::nullopt};
  if (with_geometry) prepared.geometry = impl_->path_geometry(prepared.plan, *src, *dst);
  return prepared;
}

TransferPath TransferContext::prepare(const LayoutPtr& src, const LayoutPtr& dst) {
  auto prepared = std::make_shared<const TransferPath::Prepared>(make_prepared(src, dst, true));
  impl_->make_executors(prepared->plan, src->kind(), dst->kind());
  return TransferPath(*this, std::move(prepared));
}

GpuFence TransferContext::fence(const TransferPath::Prepared& path) {
  if (!is_direct_cuda_copy(path.plan)) {
    throw make_error(ErrorCode::Unsupported, "a GPU fence needs a path on CUDA streams; {} -> {} runs as {}",
                     path.src->kind().to_string(), path.dst->kind().to_string(), to_string(path.plan));
  }
  return impl_->cuda().executor(path.src->kind(), path.dst->kind()).fence();
}

TransferHandle TransferContext::transfer(const LayoutPtr& src, const LayoutPtr& dst, std::span<const BlockPair> pairs) {
  std::optional<TransferPath::Prepared> prepared;
  try {
    // A one-off transfer builds the block geometry only when its batches can use it.
    prepared.emplace(make_prepared(src, dst, src && pairs.size() > kernel_inline_blocks(*src)));
  } catch (const Error& error) {
    return TransferHandle::completed(error);
  }
  return start(*prepared, pairs, {});
}

TransferHandle TransferContext::start(const TransferPath::Prepared& path, std::span<const BlockPair> pairs,
                                      CompletionCallback on_complete) {
  const LayoutPtr& src = path.src;
  const LayoutPtr& dst = path.dst;
  const TransferPlan& chosen = path.plan;
  auto state = std::make_shared<CompletionState>(spin_budgets(impl_->config.latency).handle_wait);
  if (on_complete) state->on_complete(std::move(on_complete));
  std::optional<RequestValidator> validator;
  try {
    validator.emplace(*src, *dst, pairs);
  } catch (const Error& error) {
    state->complete(error);
    return TransferHandle(std::move(state));
  }
  const BlockGeometry* geometry =
      path.geometry && pairs.size() > kernel_inline_blocks(*src) ? &*path.geometry : nullptr;

  impl_->begin();
  const std::vector<std::size_t> batches = batch_sizes(impl_->config, chosen, *src, *dst, pairs.size());
  // The layouts ride along until the last byte has moved (the ops point into their regions),
  // and are let go before the caller hears of the end: after wait() returns, kvbm holds no
  // reference to them, so the caller may close their files or unmount their filesystem.
  auto release_then_complete = [this, state, src = LayoutPtr(src), dst = LayoutPtr(dst)](Status status) mutable {
    src.reset();
    dst.reset();
    state->complete(std::move(status));
    impl_->end();
  };
  // When two batches are left, a sleeping waiter is woken to poll for the end (see end_is_near).
  // Two, not one: batches run two at a time (the kernel path's streams, the host paths' threads),
  // and the last two often end together, which would leave the wake-up no time to happen in.
  auto join = Join::make(
      batches.size(), std::move(release_then_complete), [state] { state->end_is_near(); }, 2);
  // Each batch starts as soon as it is checked and expanded, so the hardware works while the
  // next is built. A bad pair stops the batches after it; those already started finish.
  std::size_t first = 0;
  std::optional<Error> failed;
  for (const std::size_t batch : batches) {
    if (failed) {
      join->arrive(*failed);
      continue;
    }
    try {
      validator->check_batch(first, first + batch);
      impl_->run_batch(chosen, *src, *dst, geometry, pairs.subspan(first, batch), join->arrival());
    } catch (const Error& error) {
      failed = error;
      join->arrive(error);
    }
    first += batch;
  }
  return TransferHandle(std::move(state));
}

}  // namespace kvbm
