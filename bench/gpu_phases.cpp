// Where the wall time of a scattered pinned <-> device transfer goes. For 256 MiB of 4 KiB and
// 64 KiB blocks, each way: the time until transfer() returns (every batch checked, built and
// queued: the CPU's share), the time until wait() returns, the contiguous cudaMemcpyAsync
// ceiling, and the CPU cost of checking and expanding the whole request when timed alone.
// Each timed transfer follows an untimed one with the same pairs (see kvbm bench).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "cuda/cuda_runtime.hpp"
#include "kvbm/transfer/transfer_context.hpp"
#include "transfer/expand.hpp"

using namespace kvbm;
using Clock = std::chrono::steady_clock;

namespace {

double micros(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::micro>(to - from).count();
}

int run(int repeat) {
  TransferContext context;
  std::mt19937_64 rng(1);
  std::cout << "direction   block  submit us  wall us  ceiling us  ratio  validate us  expand us\n";
  for (const std::size_t block_bytes : {std::size_t{4096}, std::size_t{65536}}) {
    const std::size_t count = (std::size_t{256} << 20) / block_bytes;
    const LayoutConfig config{.num_blocks = 2 * count + 1, .num_layers = 1, .outer_dim = 1, .page_size = 1,
                              .inner_dim = block_bytes, .dtype_bytes = 1};
    auto host = Layout::allocate(config, StorageKind::pinned(), LayoutForm::FullyContiguous);
    auto device = Layout::allocate(config, StorageKind::device(0), LayoutForm::FullyContiguous);
    const double ceiling_us = 1e6 * cuda::timed_memcpy_seconds(device->regions().front()->data(),
                                                                host->regions().front()->data(), count * block_bytes);
    // Even indices only, shuffled: no two moved blocks are adjacent on either side.
    std::vector<std::size_t> even(count + 1);
    std::iota(even.begin(), even.end(), 0);
    for (auto& index : even) index *= 2;
    for (const bool to_device : {true, false}) {
      const LayoutPtr& src = to_device ? host : device;
      const LayoutPtr& dst = to_device ? device : host;
      for (int r = 0; r < repeat; ++r) {
        std::shuffle(even.begin(), even.end(), rng);
        std::vector<BlockPair> pairs;
        for (std::size_t i = 0; i < count; ++i) pairs.emplace_back(even[i], even[count - i]);
        if (!context.transfer(src, dst, pairs).wait().ok()) return 1;
        const auto start = Clock::now();
        TransferHandle handle = context.transfer(src, dst, pairs);
        const auto submitted = Clock::now();
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
        std::cout << fmt::format("{:<9} {:>7} {:>10.0f} {:>8.0f} {:>11.0f} {:>6.3f} {:>12.0f} {:>10.0f}\n",
                                 to_device ? "H2D" : "D2H", block_bytes, micros(start, submitted),
                                 micros(start, finished), ceiling_us, ceiling_us / micros(start, finished),
                                 micros(check_start, checked), micros(checked, expanded));
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
    return run(argc > 1 ? std::max(1, std::atoi(argv[1])) : 4);
  } catch (const Error& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
}
