#pragma once
// The options of the transfer engine's backends, set by the caller (defaults below; the CLI
// maps the environment variables named beside the settings a user decides onto them, see
// kvbm/config/environment.hpp). Fields marked "tuning" have no variable: they are there for the
// benches that compare their values, and their defaults are the measured best.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kvbm {

// Which engine moves bytes between GPU memory and pinned host memory.
enum class CudaCopyPath {
  Kernel,      // a copy kernel on a few SMs reading and writing host memory through UVA
  CopyEngine,  // cudaMemcpyBatchAsync on the DMA engines: no SMs taken from the model
  Auto,        // per batch: the copy engine for large chunks, the kernel for small ones
};
[[nodiscard]] std::string_view to_string(CudaCopyPath path) noexcept;
// "kernel", "copy_engine" or "auto"; nullopt for anything else.
[[nodiscard]] std::optional<CudaCopyPath> parse_cuda_copy_path(std::string_view name) noexcept;

struct CudaOptions {
  // Auto measured at least as well as the kernel at every size from 4 KiB to 2 MiB, and better
  // from 256 KiB (H200: 0.96-0.98 of the contiguous-copy ceiling against 0.92-0.95), where it
  // also leaves the SMs to the model: see bench/results/*-copy-paths.txt.
  CudaCopyPath copy_path = CudaCopyPath::Auto;  // KVBM_CUDA_COPY_PATH
  int copy_ctas = 8;                              // KVBM_CUDA_COPY_CTAS: the copy kernel's SM budget
  // Auto: a batch whose copies average at least this many bytes goes to the copy engine, which
  // reaches 0.96-0.98 of PCIe from 256 KiB with no SMs; below, the kernel is faster.
  std::size_t auto_copy_engine_bytes = std::size_t{256} << 10;
  // Tuning. Direct GPU copies: batches start at the engine's max_transfer_batch_size blocks (on
  // the kernel path no more than one launch carries inline, so the GPU starts after one small
  // batch is built) and double up to this many bytes: each submission costs API calls, which
  // small batches of small blocks cannot hide. The copy-engine path uses this size from the first.
  std::size_t batch_bytes = std::size_t{64} << 20;
  // Tuning, device -> device: batches ramp up from a first one carried inline, as across PCIe;
  // off, each is batch_bytes from the first. HBM copies a 64 MiB batch in about 50 us, less than
  // the CPU takes to queue a handful of launches: ramping, 256 MiB of 64 KiB-2 MiB blocks ran at
  // 0.78-0.83 of one contiguous copy, without at 0.92-0.99 (H100, bench/results).
  bool ramp_device_batches = false;
  int copy_threads = 1024;  // tuning: threads per copy-kernel CTA
  // Tuning, kernel path: batches take turns on this many streams, so one kernel's last CTAs
  // overlap the next kernel's first instead of the GPU waiting for every CTA at each boundary.
  int kernel_streams = 2;
  // Tuning, kernel path: a batch's descriptor list (too long for the launch itself) is copied to
  // device memory before the kernel reads it; off, the kernel reads it across PCIe in pinned host
  // memory where it was written, which saves three API calls per batch.
  bool upload_descriptors = true;
  // Tuning, device -> device: the same for copies within the GPU, where the kernel's work is too
  // short to hide three more API calls a batch: 4 KiB blocks ran at 0.48 of the ceiling read in
  // place, 0.37 uploaded (H100).
  bool upload_device_descriptors = false;
  // Tuning, kernel path: long batches travel as block pairs (8 bytes each) with the layouts'
  // geometry and the kernel locates every chunk; off, the CPU writes a 24-byte descriptor per
  // chunk. Batches whose adjacent blocks merge into larger copies take descriptors either way.
  bool block_kernel = true;
  int copy_engine_streams = 2;  // tuning: streams a copy-engine batch is spread over
  // Tuning: the most copies one cudaMemcpyBatchAsync call takes; calls of about a thousand small
  // copies run several times faster than one call of tens of thousands.
  std::size_t copy_engine_call_copies = 1024;

  // Throws InvalidArgument naming the first field out of range.
  void validate() const;
};

struct DiskOptions {
  std::string backend = "auto";             // KVBM_DISK_BACKEND: auto | io_uring | threads
  // KVBM_DISK_QUEUE_DEPTH: the most I/Os in flight. Deep, for small blocks: a virtual disk
  // serves scattered 4-64 KiB I/O faster the more it is given at once; the GPU machine's reads
  // 4 KiB blocks fastest at 512 (bench/results, disk-file-order).
  std::size_t queue_depth = 512;
  std::size_t io_bytes = std::size_t{1} << 20;  // tuning: the largest single I/O (a multiple of 4096)
  // Tuning: the most bytes in flight, whatever the queue depth. Large I/O fills the disk with few
  // in flight; more would only make a small request queued behind them wait longer. Also the
  // size of the io_uring backend's staging buffers, one I/O each.
  std::size_t in_flight_bytes = std::size_t{32} << 20;
  // The fallback backend's pread/pwrite threads: min(queue_depth, this).
  static constexpr std::size_t kMaxThreads = 32;

  void validate() const;
};

}  // namespace kvbm
