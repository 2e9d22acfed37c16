#pragma once
// The transfer engine: owns the executors (memcpy threads, the disk backend, the bounce pool
// and, with CUDA, streams) and turns requests into asynchronous transfers.
#include <memory>
#include <span>
#include <string>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "kvbm/transfer/strategy.hpp"
#include "kvbm/transfer/transfer_handle.hpp"

namespace kvbm {

// What a transfer context does, set by its caller: the defaults are below, and nothing here is
// read from the environment (the CLI maps the variables named beside each field onto it; see
// kvbm/config/environment.hpp).
struct TransferConfig {
  TransferCapabilities capabilities;
  std::size_t max_transfer_batch_size = 256;       // DYN_KVBM_MAX_TRANSFER_BATCH_SIZE
  std::size_t memcpy_threads = 0;                  // KVBM_MEMCPY_THREADS; 0: min(4, cores)
  std::size_t memcpy_parallel_bytes = 4u << 20;    // KVBM_MEMCPY_PARALLEL_BYTES
  std::string disk_backend = "auto";               // KVBM_DISK_BACKEND: auto | io_uring | threads
  std::size_t disk_queue_depth = 32;               // KVBM_DISK_QUEUE_DEPTH
  std::size_t disk_io_bytes = 1u << 20;            // KVBM_DISK_IO_BYTES: largest single disk I/O
  std::size_t bounce_buffer_bytes = 8u << 20;      // KVBM_BOUNCE_BUFFER_BYTES
  std::size_t bounce_buffers = 8;                  // KVBM_BOUNCE_BUFFERS
  // GPU copies between device and pinned memory:
  bool cuda_copy_engine = false;                   // KVBM_CUDA_COPY_PATH: kernel | copy_engine
  int cuda_copy_ctas = 8;                          // KVBM_CUDA_COPY_CTAS: CTAs (SMs) of the copy kernel
  int cuda_copy_threads = 1024;                    // KVBM_CUDA_COPY_THREADS: threads per CTA
  int cuda_copy_engine_streams = 2;                // KVBM_CUDA_CE_STREAMS
  // Copy-engine path: the most copies one cudaMemcpyBatchAsync call takes; a stream's share of a
  // batch goes in calls of at most this many. On the H100, 1024-copy calls moved 4K H2D chunks at
  // 4.8 GB/s where one call of all 65,536 moved 2.2, and 16K at 19 GB/s where one of 16,384 moved
  // 4-16 (bench/results/h100-2026-11-24-2a43873-notes.md).
  std::size_t cuda_copy_engine_call_copies = 1024;  // KVBM_CUDA_CE_CALL_COPIES
  // Kernel path: batches take turns on this many streams, so a kernel's last CTAs overlap the
  // next kernel's first instead of the GPU waiting for every CTA at each batch boundary. Batches
  // and transfers of one executor then run in no fixed order (a transfer names each destination
  // once). With the inline first batch (see cuda_batch_bytes), on the H100: 4K H2D 49.1-49.4 GB/s
  // against 48.8-49.0 for one stream and a 256-block first batch, 16K 50.0-50.4 against 49.1-49.2.
  int cuda_kernel_streams = 2;                     // KVBM_CUDA_KERNEL_STREAMS
  // Kernel path: a batch's descriptor list (longer than fits in the launch) is copied to device
  // memory before the kernel reads it; off, the kernel reads it in pinned host memory where it
  // was written, which saves three API calls per batch and costs reads across PCIe.
  bool cuda_upload_descriptors = true;             // KVBM_CUDA_UPLOAD_DESCRIPTORS
  // Kernel path: batches longer than a launch carries inline go to the GPU as block pairs (8 bytes
  // each) with the two layouts' geometry, and the kernel locates every chunk itself; off, the CPU
  // expands them into a descriptor per chunk (24 bytes, 40-60 ns each). Where adjacent blocks
  // would merge into larger descriptors, those batches take the descriptor path either way.
  bool cuda_block_kernel = true;                   // KVBM_CUDA_BLOCK_KERNEL
  int cuda_completion_spin_us = 100;               // KVBM_CUDA_SPIN_US: poll an event before sleeping
  int cuda_completion_watch_us = 10000;            // KVBM_CUDA_WATCH_US: watch the progress word before sleeping
  int cuda_idle_spin_us = 1000;                    // KVBM_CUDA_IDLE_SPIN_US: poll for new work before sleeping
  // Direct GPU copies: batches start at max_transfer_batch_size blocks (the GPU starts after
  // one small batch is built; on the kernel path no more blocks than one launch carries inline)
  // and double up to this many bytes (each submission costs API calls, 12 us for a kernel-path
  // batch, which small batches of small blocks cannot hide). The copy-engine path uses batches
  // of this size from the first.
  std::size_t cuda_batch_bytes = 64u << 20;        // KVBM_CUDA_BATCH_BYTES
  // How long TransferHandle::wait polls (yielding) before it sleeps: a wake-up costs 30-140 us
  // on a VM, and a waiter of a large GPU transfer has nothing else to do meanwhile.
  std::size_t wait_spin_us = 10000;                // KVBM_WAIT_SPIN_US
  std::string cufile_library;                      // KVBM_CUFILE_LIBRARY; empty: the default search

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
  // As TransferContext::transfer() between the path's layouts.
  [[nodiscard]] TransferHandle post(std::span<const BlockPair> pairs) const;
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
  [[nodiscard]] TransferHandle start(const TransferPath::Prepared& path, std::span<const BlockPair> pairs);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
