// Where the wall time of a scattered pinned <-> device or device -> device transfer goes. For
// 256 MiB of 4 KiB, 64 KiB and 2 MiB blocks, each way: the time until transfer() returns (every batch checked, built and
// queued: the CPU's share), the time until the completion callback runs (the completion
// thread has seen the end), the time until wait() returns, the contiguous cudaMemcpyAsync
// ceiling, the copy kernel alone on the same descriptors (one launch, event-timed, on the CTAs kvbm
// gives the direction: 8 across PCIe, every SM within the device:
// what the GPU needs, without kvbm's batches, launches and completion), the same kernel launched
// once per kvbm batch with nothing else between launches (on one stream, and alternating over
// two), the CPU cost of checking and expanding the whole request when timed alone, and the
// block-pair kernel alone on the same pairs (one launch, the same CTAs, event-timed).
// Each timed transfer follows an untimed one with the same pairs (see kvbm bench).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "kvbm/config/environment.hpp"
#include "kvbm/transfer/transfer_context.hpp"
#include "platform/cuda_runtime.hpp"
#include "tools/bench_tuning.hpp"
#include "transfer/backends/cuda/cuda_batching.hpp"
#include "transfer/engine/batch_sizes.hpp"
#include "transfer/engine/block_geometry.hpp"
#include "transfer/engine/expand.hpp"
#include "transfer/engine/request_validator.hpp"
#if KVBM_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "transfer/backends/cuda/block_list.hpp"
#include "transfer/backends/cuda/copy_kernel.hpp"
#endif

using namespace kvbm;
using Clock = std::chrono::steady_clock;

namespace {

double micros(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::micro>(to - from).count();
}

#if KVBM_HAVE_CUDA
// `enqueue()` run twice on `stream` between two events; the faster run, in us.
template <typename Enqueue>
double best_of_two_us(cudaStream_t stream, Enqueue&& enqueue) {
  cudaEvent_t begin = nullptr, end = nullptr;
  cudaEventCreate(&begin);
  cudaEventCreate(&end);
  float best_ms = 1e9f;
  for (int attempt = 0; attempt < 2; ++attempt) {
    cudaEventRecord(begin, stream);
    enqueue();
    cudaEventRecord(end, stream);
    cudaEventSynchronize(end);
    float ms = 0;
    cudaEventElapsedTime(&ms, begin, end);
    best_ms = std::min(best_ms, ms);
  }
  cudaEventDestroy(begin);
  cudaEventDestroy(end);
  return best_ms * 1000.0;
}

// The copy kernel over `ops` cut as kvbm cuts them, best of two runs, in us: launched once per
// entry of `batches` (descriptor counts, in order; none: one launch for all), alternating over
// `streams` streams, with the whole list uploaded beforehand. One launch is the GPU's own time;
// kvbm's batch sizes on one stream add what the kernel boundaries cost; on two streams, whether
// overlapping them helps.
double kernels_us(const CopyOps& ops, std::vector<std::size_t> batches, int streams, int ctas) {
  std::vector<cuda::CopyDescriptor> list;
  for_each_piece(ops, cuda::kMaxDescriptorBytes, [&](const CopyOp& piece) {
    list.push_back({piece.src.address(), piece.dst.address(), piece.bytes});
  });
  if (batches.empty()) batches.push_back(list.size());
  void* device_list = nullptr;
  std::vector<cudaStream_t> lanes(streams);
  cudaEvent_t handoff = nullptr;
  cudaMalloc(&device_list, list.size() * sizeof(cuda::CopyDescriptor));
  cudaMemcpy(device_list, list.data(), list.size() * sizeof(cuda::CopyDescriptor), cudaMemcpyHostToDevice);
  for (auto& lane : lanes) cudaStreamCreateWithFlags(&lane, cudaStreamNonBlocking);
  cudaEventCreateWithFlags(&handoff, cudaEventDisableTiming);
  const double us = best_of_two_us(lanes[0], [&] {
    // The other lanes start with the first and are joined back into it at the end.
    cudaEventRecord(handoff, lanes[0]);
    for (std::size_t s = 1; s < lanes.size(); ++s) cudaStreamWaitEvent(lanes[s], handoff, 0);
    std::size_t first = 0;
    for (std::size_t b = 0; b < batches.size(); ++b) {
      cuda::launch_copy_kernel(static_cast<const cuda::CopyDescriptor*>(device_list) + first,
                               static_cast<std::uint32_t>(batches[b]), ctas, 1024, lanes[b % lanes.size()]);
      first += batches[b];
    }
    for (std::size_t s = 1; s < lanes.size(); ++s) {
      cudaEventRecord(handoff, lanes[s]);
      cudaStreamWaitEvent(lanes[0], handoff, 0);
    }
  });
  cudaEventDestroy(handoff);
  for (auto lane : lanes) cudaStreamDestroy(lane);
  cudaFree(device_list);
  return us;
}

// The block-pair kernel over all `pairs` in one launch (lists uploaded beforehand), best of two
// runs, in us: what the GPU needs when it locates the chunks itself.
double block_kernel_us(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs, int ctas) {
  const auto geometry = block_geometry(src, dst);
  if (!geometry) return 0;
  const std::size_t bytes = cuda::block_list_bytes(*geometry, pairs.size());
  std::vector<std::uint64_t> list(bytes / sizeof(std::uint64_t));
  cuda::write_block_list(*geometry, pairs, list.data());
  void* device_list = nullptr;
  cudaMalloc(&device_list, bytes);
  cudaMemcpy(device_list, list.data(), bytes, cudaMemcpyHostToDevice);
  const cuda::BlockCopyList blocks = cuda::block_list_at(device_list, *geometry, pairs.size());
  const double us = best_of_two_us(nullptr, [&] { cuda::launch_block_copy_kernel(blocks, ctas, 1024, nullptr); });
  cudaFree(device_list);
  return us;
}

// One contiguous cudaMemcpyAsync of `bytes` timed on the host, from the call until a
// synchronize returns: the ceiling with the launch and the wait a caller pays, as kvbm's wall
// time includes them.
double wall_memcpy_us(void* dst, const void* src, std::size_t bytes) {
  cudaStream_t stream = nullptr;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  double best = 1e18;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto start = Clock::now();
    cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream);
    cudaStreamSynchronize(stream);
    best = std::min(best, micros(start, Clock::now()));
  }
  cudaStreamDestroy(stream);
  return best;
}

// kvbm's batches of `count` blocks (batch_sizes, as the transfer cuts them), in descriptors
// (blocks here never merge: no two moved blocks are adjacent).
std::vector<std::size_t> kvbm_batches(const TransferContext& context, const Layout& src, const Layout& dst,
                                      std::size_t count) {
  const std::size_t pieces = kernel_descriptors_per_block(src);
  std::vector<std::size_t> sizes = batch_sizes(context.config(), context.plan(src, dst), src, dst, count);
  for (std::size_t& size : sizes) size *= pieces;
  return sizes;
}
#else
double kernels_us(const CopyOps&, std::vector<std::size_t>, int, int) { return 0; }
double block_kernel_us(const Layout&, const Layout&, std::span<const BlockPair>, int) { return 0; }
double wall_memcpy_us(void*, const void*, std::size_t) { return 0; }
std::vector<std::size_t> kvbm_batches(const TransferContext&, const Layout&, const Layout&, std::size_t) { return {}; }
#endif

int run(int repeat, const std::vector<std::size_t>& block_sizes, const TransferConfig& transfer_config) {
  TransferContext context(transfer_config);
  const int sm_count = cuda::devices().front().sm_count;
  std::mt19937_64 rng(1);
  std::cout << "direction   block  submit us  callback us  wall us  ceiling us  ratio  ceiling wall us  kernel alone us  ratio"
               "  kvbm's batches us  on 2 streams us  validate us  expand us  block kernel alone us  ratio\n";
  for (const std::size_t block_bytes : block_sizes) {
    const std::size_t count = (std::size_t{256} << 20) / block_bytes;
    const LayoutConfig config{.num_blocks = 2 * count + 1, .num_layers = 1, .outer_dim = 1, .page_size = 1,
                              .inner_dim = block_bytes, .dtype_bytes = 1};
    auto host = Layout::allocate(config, StorageKind::pinned(), LayoutForm::FullyContiguous);
    auto device = Layout::allocate(config, StorageKind::device(0), LayoutForm::FullyContiguous);
    auto other_device = Layout::allocate(config, StorageKind::device(0), LayoutForm::FullyContiguous);
    // Even indices only, shuffled: no two moved blocks are adjacent on either side.
    std::vector<std::size_t> even(count + 1);
    std::iota(even.begin(), even.end(), 0);
    for (auto& index : even) index *= 2;
    for (const char* direction : {"H2D", "D2H", "D2D"}) {
      const std::string_view name = direction;
      const LayoutPtr& src = name == "H2D" ? host : device;
      const LayoutPtr& dst = name == "D2H" ? host : name == "D2D" ? other_device : device;
      // The CTAs kvbm gives the direction (see CudaStreamExecutor): every SM within the device.
      const int ctas = name == "D2D" ? sm_count : context.config().cuda.copy_ctas;
      void* const dst_bytes = dst->regions().front()->data();
      const void* const src_bytes = src->regions().front()->data();
      const double ceiling_us = 1e6 * cuda::timed_memcpy_seconds(dst_bytes, src_bytes, count * block_bytes);
      const double ceiling_wall_us = wall_memcpy_us(dst_bytes, src_bytes, count * block_bytes);
      for (int r = 0; r < repeat; ++r) {
        std::shuffle(even.begin(), even.end(), rng);
        std::vector<BlockPair> pairs;
        for (std::size_t i = 0; i < count; ++i) pairs.emplace_back(even[i], even[count - i]);
        if (!context.transfer(src, dst, pairs).wait().ok()) return 1;
        const auto start = Clock::now();
        TransferHandle handle = context.transfer(src, dst, pairs);
        const auto submitted = Clock::now();
        std::atomic<Clock::time_point> called_back{};
        handle.on_complete([&](const Status&) { called_back = Clock::now(); });
        const Status status = handle.wait();
        const auto finished = Clock::now();
        if (!status.ok()) {
          std::cerr << status.to_string() << "\n";
          return 1;
        }
        const auto check_start = Clock::now();
        validate_request(*src, *dst, pairs);
        const auto checked = Clock::now();
        const CopyOps ops = expand_pairs(*src, *dst, pairs);
        const auto expanded = Clock::now();
        const double kernel_us = kernels_us(ops, {}, 1, ctas);
        const double block_us = block_kernel_us(*src, *dst, pairs, ctas);
        const auto batches = kvbm_batches(context, *src, *dst, count);
        std::cout << fmt::format("{:<9} {:>7} {:>10.0f} {:>12.0f} {:>8.0f} {:>11.0f} {:>6.3f} {:>16.0f} {:>16.0f} {:>6.3f} {:>18.0f} {:>16.0f} "
                                 "{:>12.0f} {:>10.0f} {:>22.0f} {:>6.3f}\n",
                                 direction, block_bytes, micros(start, submitted),
                                 micros(start, called_back.load()), micros(start, finished), ceiling_us,
                                 ceiling_us / micros(start, finished), ceiling_wall_us, kernel_us, ceiling_us / kernel_us,
                                 kernels_us(ops, batches, 1, ctas), kernels_us(ops, batches, 2, ctas),
                                 micros(check_start, checked), micros(checked, expanded), block_us,
                                 ceiling_us / block_us);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda::device_count() == 0) {
    std::cerr << "kvbm_gpu_phases: no CUDA device\n";
    return 2;
  }
  try {
    // kvbm_gpu_phases [REPEAT [BLOCK_BYTES|all [KEY=VALUE...]]]: one block size instead of all
    // three; then tuning fields, as `kvbm bench --tune` takes them.
    std::vector<std::size_t> block_sizes = {4096, 65536, 2u << 20};
    if (argc > 2 && std::string_view(argv[2]) != "all") {
      block_sizes = {std::max<std::size_t>(1, std::strtoull(argv[2], nullptr, 10))};
    }
    TransferConfig config = environment::transfer_config();
    for (int i = 3; i < argc; ++i) tools::apply_tuning(config, argv[i]);
    return run(argc > 1 ? std::max(1, std::atoi(argv[1])) : 4, block_sizes, config);
  } catch (const Error& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
}
