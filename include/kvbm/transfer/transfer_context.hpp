#pragma once
// The transfer engine: owns the executors (memcpy threads, the disk backend, the bounce pool
// and, with CUDA, streams) and turns requests into asynchronous transfers.
#include <memory>
#include <span>
#include <string>

#include "kvbm/common/latency.hpp"
#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/backend_options.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "kvbm/transfer/gpu_fence.hpp"
#include "kvbm/transfer/strategy.hpp"
#include "kvbm/transfer/transfer_handle.hpp"

namespace kvbm {

// What a transfer context does, set by its caller: the defaults are below, and nothing here is
// read from the environment (the CLI maps the variables named beside each field onto it; see
// kvbm/config/environment.hpp).
struct TransferConfig {
  TransferCapabilities capabilities;           // KVBM_ALLOW_GDS
  std::size_t max_transfer_batch_size = 256;  // DYN_KVBM_MAX_TRANSFER_BATCH_SIZE: blocks per batch
  std::size_t memcpy_threads = 0;             // KVBM_MEMCPY_THREADS; 0: min(4, cores)
  std::size_t memcpy_parallel_bytes = std::size_t{4} << 20;  // tuning: a host copy this large is split across threads
  DiskOptions disk;
  CudaOptions cuda;
  std::size_t bounce_buffer_bytes = std::size_t{8} << 20;  // KVBM_BOUNCE_BUFFER_BYTES
  std::size_t bounce_buffers = 8;                         // KVBM_BOUNCE_BUFFERS
  LatencyPolicy latency = LatencyPolicy::Low;             // KVBM_LATENCY
  std::string cufile_library;                             // KVBM_CUFILE_LIBRARY; empty: the default search

  // Throws InvalidArgument naming the first field out of range.
  void validate() const;
};

class TransferContext;

// A transfer path between two layouts, prepared once by TransferContext::prepare(): the pair
// checked, the plan fixed, its executors made and the block geometry built, so that each post()
// only checks its block pairs and starts the batches. Copies share one preparation. It keeps
// its layouts alive; it must not outlive its context.
class TransferPath {
 public:
  // As TransferContext::transfer() between the path's layouts. `on_complete`, when given, is
  // attached before any work starts, so it runs on the thread that finishes the transfer: a
  // backend's thread, or the caller's only when the pairs fail their checks.
  [[nodiscard]] TransferHandle post(std::span<const BlockPair> pairs, CompletionCallback on_complete = {}) const;
  // A fence after every copy posted on this path so far (and any other copy its CUDA streams
  // carry): a caller's stream that waits on it runs its next work only once they have ended.
  // Throws Unsupported for a path that does not run on CUDA streams (one without a device side,
  // a two-hop plan, disk) and kvbm::Error (Cuda) if the events cannot be recorded. A copy that
  // fails still releases the wait: its handle reports the failure.
  [[nodiscard]] GpuFence fence() const;
  [[nodiscard]] const TransferPlan& plan() const;
  [[nodiscard]] const LayoutPtr& src() const;
  [[nodiscard]] const LayoutPtr& dst() const;

  struct Prepared;  // defined with TransferContext

 private:
  friend class TransferContext;
  TransferPath(TransferContext& context, std::shared_ptr<const Prepared> prepared);
  TransferContext* context_;
  std::shared_ptr<const Prepared> prepared_;
};

class TransferContext {
 public:
  explicit TransferContext(TransferConfig config = {});
  ~TransferContext();  // waits for every transfer it started
  TransferContext(const TransferContext&) = delete;
  TransferContext& operator=(const TransferContext&) = delete;

  // Copies blocks `pairs[i].first` of `src` to blocks `pairs[i].second` of `dst`. Never throws
  // for a bad request: the handle completes with the error (naming the index, field, path or
  // errno), and then no destination block is to be trusted.
  [[nodiscard]] TransferHandle transfer(const LayoutPtr& src, const LayoutPtr& dst, std::span<const BlockPair> pairs);

  // The path between two layouts, for many transfers. Throws InvalidArgument for a null layout
  // or layouts of different shapes, Unsupported when this build or machine cannot move bytes
  // between their kinds (e.g. device memory without CUDA).
  [[nodiscard]] TransferPath prepare(const LayoutPtr& src, const LayoutPtr& dst);

  // The plan transfer() runs between these layouts (both local): see execution_plan().
  [[nodiscard]] TransferPlan plan(const Layout& src, const Layout& dst) const;

  [[nodiscard]] const TransferConfig& config() const;
  // "io_uring" or "threads".
  [[nodiscard]] std::string disk_backend_name() const;

 private:
  friend class TransferPath;
  // The preparation transfer() and prepare() share; the geometry only `with_geometry`.
  [[nodiscard]] TransferPath::Prepared make_prepared(const LayoutPtr& src, const LayoutPtr& dst, bool with_geometry);
  [[nodiscard]] TransferHandle start(const TransferPath::Prepared& path, std::span<const BlockPair> pairs,
                                     CompletionCallback on_complete);
  [[nodiscard]] GpuFence fence(const TransferPath::Prepared& path);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
