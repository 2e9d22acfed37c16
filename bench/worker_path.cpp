// Worker-path benchmark: a leader in this process drives `kvbm worker` processes (each with a
// GPU Device pool and a pinned Host pool of its own) as a user's leader would, and prints GB/s
// beside one contiguous cudaMemcpy of a worker's bytes between pinned memory and the GPU
// in this process (the ceiling) and the same blocks moved by a TransferContext in this process
// (what `kvbm bench` measures: the engine without the worker around it), in the same rounds. For each block size and each
// direction (Host->Device, Device->Host), with every worker moving its own blocks:
//   16 xN   a 256 MiB leg of scattered random blocks, as requests of 16 blocks, IN_FLIGHT of
//           them outstanding at a time;
//   leg     the same leg as one request;
//   16 x1   the same leg as requests of 16 blocks, one at a time (each waits for the last's
//           answer: the latency-bound case of prefixes loaded one by one).
// Every byte is checked: the worker fills the source blocks with seeded random bytes
// (kvbm.fill) before each run, and after it the XXH3 of each destination block (kvbm.hash) must
// equal its source's; a row whose bytes differ says so and the bench exits 1. Every block of
// both pools moves once each way, untimed, before the first row. As `kvbm bench` does, each
// timed run follows an untimed one of the same requests, here into the blocks the timed run
// leaves alone (so they still prove that it wrote its own): the fill and the hashes leave the
// GPU idle for tens of milliseconds, and the first transfer after that pays for waking it up.
//
// Columns: GB/s through the workers, the ceiling and their ratio, then the in-process figure
// and the workers' over it (what the worker and the control path around the engine cost).
//
//   kvbm_worker_bench [SIZES=64K,2M] [IN_FLIGHT=8] [REPEAT=3] [WORKERS=1]
#include <algorithm>
#include <chrono>
#include <deque>
#include <future>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kvbm/common/settings.hpp"
#include "kvbm/config/environment.hpp"
#include "kvbm/distributed/leader.hpp"
#include "kvbm/distributed/protocol.hpp"
#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/transfer_context.hpp"
#include "platform/cuda_runtime.hpp"
#include "support/worker_process.hpp"
#include "tools/bench_tier.hpp"

using namespace std::chrono;
using namespace kvbm;

namespace {

constexpr std::size_t kLegBytes = std::size_t{256} << 20;
constexpr milliseconds kTimeout{60000};

// "64K,2M" as block sizes (settings::parse_size names a bad one).
std::vector<std::size_t> parse_sizes(const std::string& list) {
  std::vector<std::size_t> sizes;
  std::size_t start = 0;
  for (std::size_t comma; (comma = list.find(',', start)) != std::string::npos; start = comma + 1) {
    sizes.push_back(settings::parse_size("SIZES", list.substr(start, comma - start)));
  }
  sizes.push_back(settings::parse_size("SIZES", list.substr(start)));
  return sizes;
}

// Every rank's reply must be ok; the JSON data of each, by rank.
std::vector<nlohmann::json> rank_data(const LeaderResult& result, const std::string& what) {
  if (!result.status.ok()) throw std::runtime_error(what + ": " + result.status.to_string());
  std::vector<nlohmann::json> data(result.outcomes.size());
  for (const auto& outcome : result.outcomes) {
    data.at(static_cast<std::size_t>(outcome.rank)) = outcome.data.empty() ? nlohmann::json() : nlohmann::json::parse(outcome.data);
  }
  return data;
}

// hashes[rank][i]: XXH3 of block blocks[i] of `pool` on each rank.
std::vector<std::vector<std::uint64_t>> hashes(Leader& leader, BlockTransferPool pool, const std::vector<std::size_t>& blocks) {
  const nlohmann::json body = {{"pool", to_string(pool)}, {"blocks", blocks}};
  std::vector<std::vector<std::uint64_t>> out;
  for (const auto& data : rank_data(leader.send(protocol::kHash, {body.dump()}, kTimeout), "kvbm.hash")) {
    out.push_back(data.at("hashes").get<std::vector<std::uint64_t>>());
  }
  return out;
}

struct Row {
  std::string name;
  BlockTransferPool from;
  BlockTransferPool to;
  std::size_t blocks_per_request;  // 0: the whole leg in one request
  std::size_t in_flight;           // requests outstanding at a time
  std::vector<double> gbps;
  std::vector<double> ceilings;
  std::vector<double> in_process;
  bool verified = true;
};

class Bench {
 public:
  Bench(std::size_t block_bytes, int workers)
      : block_bytes_(block_bytes), workers_(workers), leg_blocks_(kLegBytes / block_bytes),
        pool_blocks_(2 * leg_blocks_), endpoint_(fmt::format("ipc:///tmp/kvbm-worker-bench-{}", ::getpid())),
        leader_(endpoint_, workers) {
    for (int rank = 0; rank < workers; ++rank) {
      const std::vector<std::string> args = {
          "--leader", endpoint_, "--rank", std::to_string(rank), "--world-size", std::to_string(workers),
          "--device-blocks", std::to_string(pool_blocks_), "--host-blocks", std::to_string(pool_blocks_),
          "--host-kind", "pinned", "--layout", "fc", "--num-layers", "1", "--outer-dim", "1", "--page-size", "1",
          "--inner-dim", std::to_string(block_bytes), "--dtype-bytes", "1"};
      processes_.push_back(std::make_unique<testing::WorkerProcess>(testing::kvbm_cli(KVBM_CLI_PATH), args));
    }
    leader_.wait_for_workers(kTimeout);
    // Every block once each way, untimed, as `kvbm bench` runs each case once first: the GPU's
    // translations of the pinned pool's pages are then warm for every row alike (the copy
    // kernel reads and writes host memory through them, and a first touch costs far more).
    for (const auto& [from, to] : {std::pair{BlockTransferPool::Host, BlockTransferPool::Device},
                                   std::pair{BlockTransferPool::Device, BlockTransferPool::Host}}) {
      BlockTransferRequest warm{from, to, {}, std::nullopt};
      for (std::size_t b = 0; b < pool_blocks_; ++b) warm.blocks.emplace_back(b, b);
      rank_data(leader_.transfer(warm, kTimeout), "warm-up transfer");
    }
    const LayoutConfig config{.num_blocks = 1, .num_layers = 1, .outer_dim = 1, .page_size = 1,
                              .inner_dim = kLegBytes, .dtype_bytes = 1};
    pinned_ = Layout::allocate(config, StorageKind::pinned(), LayoutForm::FullyContiguous);
    device_ = Layout::allocate(config, StorageKind::device(0), LayoutForm::FullyContiguous);
    const LayoutConfig pool{.num_blocks = pool_blocks_, .num_layers = 1, .outer_dim = 1, .page_size = 1,
                            .inner_dim = block_bytes, .dtype_bytes = 1};
    local_host_ = Layout::allocate(pool, StorageKind::pinned(), LayoutForm::FullyContiguous);
    local_device_ = Layout::allocate(pool, StorageKind::device(0), LayoutForm::FullyContiguous);
  }

  // One timed run of a row: fill the sources, move them, check every destination block.
  void run(Row& row, std::mt19937_64& rng) {
    std::vector<std::size_t> indices(pool_blocks_);
    std::iota(indices.begin(), indices.end(), 0);
    std::shuffle(indices.begin(), indices.end(), rng);
    const std::vector<std::size_t> from(indices.begin(), indices.begin() + static_cast<long>(leg_blocks_));
    std::shuffle(indices.begin(), indices.end(), rng);
    const std::vector<std::size_t> to(indices.begin(), indices.begin() + static_cast<long>(leg_blocks_));
    const std::vector<std::size_t> elsewhere(indices.begin() + static_cast<long>(leg_blocks_), indices.end());
    const nlohmann::json fill = {{"pool", to_string(row.from)}, {"blocks", from}, {"seed", rng()}};
    rank_data(leader_.send(protocol::kFill, {fill.dump()}, kTimeout), "kvbm.fill");
    const auto expected = hashes(leader_, row.from, from);

    move_leg(row, from, elsewhere);  // untimed: wakes the GPU up, as kvbm bench's first pass does
    const auto start = steady_clock::now();
    move_leg(row, from, to);
    const double seconds = duration<double>(steady_clock::now() - start).count();
    row.gbps.push_back(static_cast<double>(leg_blocks_ * block_bytes_) * workers_ / seconds / 1e9);
    row.verified = row.verified && hashes(leader_, row.to, to) == expected;
    // The ceiling of the same bytes, in the same round: one contiguous copy in this process.
    const bool onboard = row.to == BlockTransferPool::Device;
    row.ceilings.push_back(onboard ? tools::ceiling_gbps(*pinned_, *device_, leg_blocks_ * block_bytes_)
                                   : tools::ceiling_gbps(*device_, *pinned_, leg_blocks_ * block_bytes_));
    row.in_process.push_back(in_process_gbps(row, from, to, elsewhere));
  }

  [[nodiscard]] std::size_t leg_blocks() const { return leg_blocks_; }

 private:
  // The same blocks through a TransferContext in this process, as kvbm bench moves them: one
  // untimed pass, then the timed one; the same requests as the row, row.in_flight at a time.
  double in_process_gbps(const Row& row, const std::vector<std::size_t>& from, const std::vector<std::size_t>& to,
                         const std::vector<std::size_t>& elsewhere) {
    const bool onboard = row.to == BlockTransferPool::Device;
    const LayoutPtr& src = onboard ? local_host_ : local_device_;
    const LayoutPtr& dst = onboard ? local_device_ : local_host_;
    const auto move = [&](const std::vector<std::size_t>& targets) {
      in_flight<TransferHandle>(
          row, from, targets, [&](const BlockTransferRequest& request) { return context_.transfer(src, dst, request.blocks); },
          [](TransferHandle& handle) {
            const Status status = handle.wait();
            if (!status.ok()) throw std::runtime_error("in-process transfer: " + status.to_string());
          });
    };
    move(elsewhere);
    const auto start = steady_clock::now();
    move(to);
    return static_cast<double>(leg_blocks_ * block_bytes_) / duration<double>(steady_clock::now() - start).count() / 1e9;
  }

  // Blocks from[i] -> to[i] as the row's requests through the workers.
  void move_leg(const Row& row, const std::vector<std::size_t>& from, const std::vector<std::size_t>& to) {
    in_flight<std::future<LeaderResult>>(
        row, from, to,
        [&](const BlockTransferRequest& request) {
          return leader_.send_async(protocol::kTransferHandler, {encode_request(request)}, kTimeout);
        },
        [](std::future<LeaderResult>& reply) { rank_data(reply.get(), "transfer"); });
  }

  // Cuts from[i] -> to[i] into the row's requests and keeps at most row.in_flight of them
  // outstanding: `start(request)` returns what `finish(it)` waits for.
  template <typename Outstanding, typename Start, typename Finish>
  void in_flight(const Row& row, const std::vector<std::size_t>& from, const std::vector<std::size_t>& to, Start&& start,
                 Finish&& finish) {
    const std::size_t per_request = row.blocks_per_request ? row.blocks_per_request : leg_blocks_;
    std::deque<Outstanding> outstanding;
    for (std::size_t first = 0; first < leg_blocks_; first += per_request) {
      BlockTransferRequest request{row.from, row.to, {}, std::nullopt};
      for (std::size_t i = first; i < std::min(first + per_request, leg_blocks_); ++i) request.blocks.emplace_back(from[i], to[i]);
      if (outstanding.size() == row.in_flight) {
        finish(outstanding.front());
        outstanding.pop_front();
      }
      outstanding.push_back(start(request));
    }
    for (; !outstanding.empty(); outstanding.pop_front()) finish(outstanding.front());
  }

  std::size_t block_bytes_;
  int workers_;
  std::size_t leg_blocks_;
  std::size_t pool_blocks_;
  std::string endpoint_;
  Leader leader_;
  std::vector<std::unique_ptr<testing::WorkerProcess>> processes_;
  LayoutPtr pinned_;
  LayoutPtr device_;
  TransferContext context_{environment::transfer_config()};
  LayoutPtr local_host_;  // pools shaped as a worker's, for in_process_gbps
  LayoutPtr local_device_;
};

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::size_t> sizes = parse_sizes(argc > 1 ? argv[1] : "64K,2M");
  const std::size_t in_flight = argc > 2 ? std::stoul(argv[2]) : 8;
  const int repeat = argc > 3 ? std::stoi(argv[3]) : 3;
  const int workers = argc > 4 ? std::stoi(argv[4]) : 1;
  if (cuda::device_count() == 0) {
    std::cout << "kvbm_worker_bench: no CUDA device (" << cuda::unavailable_reason() << "): nothing to measure\n";
    return 0;
  }
  fmt::print("# kvbm_worker_bench: {} kvbm worker process(es), leader in this process, {} requests in flight; "
             "median of {}; ceiling: one contiguous cudaMemcpy of one worker's bytes, same rounds\n",
             workers, in_flight, repeat);
  fmt::print("{:<8} {:<14} {:>8} {:>7} {:>9} {:>9} {:>6} {:>10} {:>6}  {}\n", "block", "direction", "request", "blocks",
             "GB/s", "ceiling", "ratio", "in-process", "ratio", "verified");
  bool all_verified = true;
  std::mt19937_64 rng(42);
  for (const std::size_t size : sizes) {
    Bench bench(size, workers);
    const std::size_t leg = bench.leg_blocks();
    std::vector<Row> rows;
    for (const auto& [from, to, name] : {std::tuple{BlockTransferPool::Host, BlockTransferPool::Device, "Host->Device"},
                                         std::tuple{BlockTransferPool::Device, BlockTransferPool::Host, "Device->Host"}}) {
      rows.push_back({name, from, to, 16, in_flight, {}, {}});
      rows.push_back({name, from, to, 0, 1, {}, {}});
      rows.push_back({name, from, to, 16, 1, {}, {}});
    }
    for (int round = 0; round < repeat; ++round) {
      for (Row& row : rows) bench.run(row, rng);
    }
    for (const Row& row : rows) {
      const double gbps = tools::median(row.gbps);
      const double ceiling = tools::median(row.ceilings);  // the workers share one GPU link
      const double in_process = tools::median(row.in_process);
      const std::string request = row.blocks_per_request ? fmt::format("16 x{}", row.in_flight) : "leg";
      fmt::print("{:<8} {:<14} {:>8} {:>7} {:>9.2f} {:>9.2f} {:>6.2f} {:>10.2f} {:>6.2f}  {}\n", tools::human_size(size),
                 row.name, request, leg, gbps, ceiling, gbps / ceiling, in_process, gbps / in_process,
                 row.verified ? "yes" : "NO");
      all_verified = all_verified && row.verified;
    }
  }
  return all_verified ? 0 : 1;
}
