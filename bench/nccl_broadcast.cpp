// Replicated mode's broadcast on two GPUs (on one, a rank alone: see main), one thread and
// communicator per GPU: for each block size, the same bytes in scattered blocks of a device
// layout moved these ways, in the same run:
//   contiguous: one ncclBroadcast of all the bytes (the ceiling)
//   packed:     kvbm's PackedBroadcast (pack into staging, large broadcasts, unpack)
//   per-block:  the seed's way, one ncclBroadcast per block inside one NCCL group
//   pieces:     the contiguous bytes broadcast in the packed way's pieces, without copies (what
//               the pieces alone cost)
// Usage: kvbm_nccl_bench [TOTAL_MIB=256] [REPEAT=5] [blocking] [STAGING_MIB:RAMP:CTAS[:SLOTS]...];
// prints GB/s (median) and the ratio to contiguous. `blocking` makes the communicators with
// NCCL's blocking calls; each STAGING_MIB:RAMP:CTAS[:SLOTS] adds a packed column with those
// options (SLOTS: 2 when left out).
#include <fmt/format.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "distributed/broadcast_pieces.hpp"
#include "distributed/replicated_broadcast.hpp"
#include "kvbm/distributed/nccl_communicator.hpp"
#include "platform/cuda_runtime.hpp"

using namespace kvbm;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) try {
  const std::size_t total = (argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 256) << 20;
  const int repeat = argc > 2 ? std::atoi(argv[2]) : 5;
  std::string reason;
  if (!NcclCommunicator::available(reason)) {
    std::cerr << "kvbm_nccl_bench needs a GPU and NCCL: " << reason << "\n";
    return 2;
  }
  // On one GPU, a communicator of one rank: its broadcasts reach nobody, so what is left is the
  // sender's own cost (listing, packing, the calls).
  const int world = std::min(2, cuda::device_count());
  bool blocking = false;
  std::vector<PackedBroadcastOptions> variants;
  for (int arg = 3; arg < argc; ++arg) {
    PackedBroadcastOptions variant;
    unsigned staging_mib = 0;
    if (std::string(argv[arg]) == "blocking") {
      blocking = true;
    } else if (const int fields = std::sscanf(argv[arg], "%u:%u:%d:%u", &staging_mib, &variant.ramp_steps,
                                               &variant.overlapped_ctas, &variant.slots);
               fields == 3 || fields == 4) {
      variant.staging_bytes = std::size_t{staging_mib} << 20;
      variants.push_back(variant);
    } else {
      std::cerr << "kvbm_nccl_bench: '" << argv[arg] << "' is neither `blocking` nor STAGING_MIB:RAMP:CTAS[:SLOTS]\n";
      return 2;
    }
  }
  const std::string id = NcclCommunicator::new_unique_id();
  std::barrier sync(world);
  std::cout << fmt::format("kvbm_nccl_bench: {} GPU(s), {} MiB per case, median of {}\n", world, total >> 20, repeat);
  if (world == 1) {
    std::cout << "(one rank: broadcasts reach nobody; the GB/s say how fast the sender's side alone goes, and the "
                 "ratios to a broadcast that moves nothing mean little; the variants' columns are GB/s)\n";
  }
  std::cout << fmt::format("communicator: {} NCCL calls\n", blocking ? "blocking" : "non-blocking");
  const PackedBroadcastOptions defaults;
  std::string header = fmt::format("{:>7} {:>8} {:>14} {:>10} {:>6} {:>14} {:>6} {:>8} {:>6}", "block", "blocks",
                                   "contiguous GB/s", "packed", "ratio", "per-block", "ratio", "pieces", "ratio");
  for (const auto& variant : variants) {
    header += fmt::format(" {:>14}", fmt::format("{}:{}:{}:{}", variant.staging_bytes >> 20, variant.ramp_steps,
                                                  variant.overlapped_ctas, variant.slots));
  }
  std::cout << header << fmt::format("\n(packed: staging {} MiB in {} slots, ramp {}, {} CTAs beside a broadcast; the "
                                     "last columns: packed with other options, as a ratio)\n",
                                     defaults.staging_bytes >> 20, defaults.slots, defaults.ramp_steps,
                                     defaults.overlapped_ctas);
  const auto rank_main = [&](int rank, std::vector<std::string>* lines) {
    NcclCommunicator communicator(id, rank, world, rank, std::chrono::seconds(120), blocking);
    for (std::size_t block : {std::size_t{4} << 10, std::size_t{32} << 10, std::size_t{256} << 10, std::size_t{2} << 20}) {
      const std::size_t count = total / block;
      // Twice the blocks, moving every other one in shuffled order: scattered, as a real request is.
      const LayoutConfig config{.num_blocks = 2 * count, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = block,
                                .dtype_bytes = 1};
      auto pool = Layout::allocate(config, StorageKind::device(static_cast<std::uint32_t>(rank)), LayoutForm::FullyContiguous);
      auto flat = Layout::allocate(LayoutConfig{.num_blocks = count, .num_layers = 1, .outer_dim = 1, .page_size = 1,
                                                .inner_dim = block, .dtype_bytes = 1},
                                   StorageKind::device(static_cast<std::uint32_t>(rank)), LayoutForm::FullyContiguous);
      std::vector<std::size_t> blocks(count);
      for (std::size_t i = 0; i < count; ++i) blocks[i] = 2 * i;
      std::shuffle(blocks.begin(), blocks.end(), std::mt19937_64(block));
      std::vector<std::pair<void*, std::size_t>> per_block;
      for (std::size_t b : blocks) {
        const ChunkLocation at = pool->locate(b, 0, 0);
        per_block.emplace_back(at.region->data() + at.offset, block);
      }
      // The seed's groups, at most 4096 broadcasts each (NCCL's group holds them all until its end).
      const auto per_block_groups = [&] {
        for (std::size_t first = 0; first < per_block.size(); first += 4096) {
          communicator.broadcast(std::span(per_block).subspan(first, std::min<std::size_t>(4096, per_block.size() - first)), 0);
        }
      };
      const auto whole = contiguous_blocks(*flat, count);
      std::vector<std::unique_ptr<PackedBroadcast>> packed;
      packed.push_back(std::make_unique<PackedBroadcast>(pool));
      for (const auto& variant : variants) packed.push_back(std::make_unique<PackedBroadcast>(pool, variant));
      // The default packed way's pieces, cut from the contiguous bytes.
      std::vector<std::pair<void*, std::size_t>> pieces;
      std::size_t offset = 0;
      for (std::size_t size : broadcast_pieces(count, packed.front()->blocks_per_piece(), defaults.ramp_steps)) {
        pieces.emplace_back(static_cast<std::byte*>(whole.first) + offset, size * block);
        offset += size * block;
      }
      const auto broadcast_pieces_alone = [&] {
        for (const auto& piece : pieces) communicator.enqueue_broadcast(std::span(&piece, 1), 0);
        communicator.synchronize();
      };
      const std::size_t ways = 3 + packed.size();
      std::vector<std::vector<double>> times(ways);
      for (int run = -1; run < repeat; ++run) {  // run -1 warms up
        for (std::size_t way = 0; way < ways; ++way) {
          sync.arrive_and_wait();
          const auto start = Clock::now();
          if (way == 0) communicator.broadcast(std::span(&whole, 1), 0);
          if (way == 1) per_block_groups();
          if (way == 2) broadcast_pieces_alone();
          if (way >= 3) packed[way - 3]->run(communicator, blocks);
          sync.arrive_and_wait();
          if (run >= 0) times[way].push_back(std::chrono::duration<double>(Clock::now() - start).count());
        }
      }
      if (rank != 0) continue;
      std::vector<double> gbps(ways);
      for (std::size_t way = 0; way < ways; ++way) {
        std::sort(times[way].begin(), times[way].end());
        gbps[way] = static_cast<double>(count * block) / times[way][times[way].size() / 2] / 1e9;
      }
      std::string line = fmt::format("{:>6}K {:>8} {:>14.1f} {:>10.1f} {:>6.2f} {:>14.1f} {:>6.2f} {:>8.1f} {:>6.2f}",
                                     block >> 10, count, gbps[0], gbps[3], gbps[3] / gbps[0], gbps[1], gbps[1] / gbps[0],
                                     gbps[2], gbps[2] / gbps[0]);
      // One rank alone: the variants' own GB/s, since the ratio is to a broadcast that moves nothing.
      for (std::size_t way = 4; way < ways; ++way) {
        line += world == 1 ? fmt::format(" {:>14.1f}", gbps[way]) : fmt::format(" {:>14.2f}", gbps[way] / gbps[0]);
      }
      lines->push_back(line);
    }
  };
  std::vector<std::string> lines;
  std::thread other;
  if (world == 2) other = std::thread([&] { rank_main(1, nullptr); });
  rank_main(0, &lines);
  if (other.joinable()) other.join();
  for (const auto& line : lines) std::cout << line << "\n";
  return 0;
} catch (const std::exception& error) {
  std::cerr << "kvbm_nccl_bench: " << error.what() << "\n";
  return 1;
}
