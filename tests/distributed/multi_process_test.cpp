// A real leader (this process) and two `kvbm worker` processes on loopback TCP: random blocks
// in every accepted direction the pools allow here (the Disk pool fully contiguous, the others
// layer-separate), every byte checked on every rank through XXH3 hashes of whole blocks; a
// worker killed with SIGKILL is named by rank.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "cuda/cuda_runtime.hpp"
#include "kvbm/distributed/leader.hpp"
#include "support/roundtrip.hpp"
#include "support/worker_process.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;
using P = BlockTransferPool;
constexpr std::size_t kBlocks = 48;

// A worker with Host and Disk pools (and a Device pool with a GPU) of kBlocks blocks each.
std::unique_ptr<WorkerProcess> start_worker(const std::string& endpoint, int rank, int world, const std::string& dir,
                                            bool device) {
  std::vector<std::string> args = {"--leader", endpoint, "--rank", std::to_string(rank), "--world-size",
                                   std::to_string(world), "--host-blocks", std::to_string(kBlocks), "--disk-blocks",
                                   std::to_string(kBlocks), "--disk-dir", dir, "--layout", "ls-outer", "--disk-layout",
                                   "fc", "--num-layers", "3", "--page-size", "8", "--inner-dim", "100"};
  if (device) args.insert(args.end(), {"--device-blocks", std::to_string(kBlocks)});
  return std::make_unique<WorkerProcess>(kvbm_cli(KVBM_CLI_PATH), args);
}

std::string frame(const nlohmann::json& json) { return json.dump(); }

// Block hashes of `pool` on every rank: [rank][i] for the given blocks.
std::vector<std::vector<std::uint64_t>> hashes(Leader& leader, P pool, const std::vector<std::size_t>& blocks) {
  const LeaderResult result =
      leader.send(protocol::kHash, {frame({{"pool", to_string(pool)}, {"blocks", blocks}})}, 20s);
  EXPECT_TRUE(result.status.ok()) << result.status.to_string();
  std::vector<std::vector<std::uint64_t>> by_rank(leader.world_size());
  for (const auto& outcome : result.outcomes) {
    if (outcome.rank >= 0) by_rank[outcome.rank] = outcome.data.at("hashes").get<std::vector<std::uint64_t>>();
  }
  return by_rank;
}

class MultiProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    port = 20000 + static_cast<int>(rng() % 20000) * 2;
    endpoint = "tcp://127.0.0.1:" + std::to_string(port);
    leader = std::make_unique<Leader>(endpoint, 2);
    for (int rank = 0; rank < 2; ++rank) workers.push_back(start_worker(endpoint, rank, 2, dir.path(), gpu));
    leader->wait_for_workers(30s);
  }

  // Moves random source blocks to random destination blocks on every rank and checks them.
  void move_and_verify(P from, P to, std::uint64_t seed) {
    SCOPED_TRACE(to_string(from) + " -> " + to_string(to));
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> all(kBlocks);
    std::iota(all.begin(), all.end(), 0);
    const auto src = scattered_blocks(9, kBlocks, rng);
    const auto dst = scattered_blocks(9, kBlocks, rng);
    ASSERT_TRUE(leader->send(protocol::kFill, {frame({{"pool", to_string(from)}, {"blocks", src}, {"seed", seed}})}, 20s)
                    .status.ok());
    const auto before_src = hashes(*leader, from, src);
    const auto before_dst = hashes(*leader, to, all);
    BlockTransferRequest request{from, to, {}, std::nullopt};
    for (std::size_t i = 0; i < src.size(); ++i) request.blocks.emplace_back(src[i], dst[i]);
    const LeaderResult result = leader->transfer(request, 30s);
    ASSERT_TRUE(result.status.ok()) << result.status.to_string();
    const auto after_dst = hashes(*leader, to, all);
    for (int rank = 0; rank < 2; ++rank) {
      // Different ranks hold different bytes (the fill seeds by rank): each rank moved its own shard.
      EXPECT_NE(before_src[0], before_src[1]);
      for (std::size_t b = 0; b < kBlocks; ++b) {
        const auto it = std::find(dst.begin(), dst.end(), b);
        const std::uint64_t want = it == dst.end() ? before_dst[rank][b] : before_src[rank][it - dst.begin()];
        EXPECT_EQ(after_dst[rank][b], want) << "rank " << rank << " block " << b;
      }
    }
  }

  bool gpu = cuda::device_count() > 0;
  TempDir dir;
  int port = 0;
  std::string endpoint;
  std::unique_ptr<Leader> leader;
  std::vector<std::unique_ptr<WorkerProcess>> workers;
};

TEST_F(MultiProcess, EveryAcceptedDirectionOnEveryRank) {
  move_and_verify(P::Host, P::Disk, 11);
  if (gpu) {
    move_and_verify(P::Host, P::Device, 12);
    move_and_verify(P::Device, P::Host, 13);
    move_and_verify(P::Device, P::Disk, 14);
    move_and_verify(P::Disk, P::Device, 15);
  }
  // The pairs the seed refuses, on every rank.
  for (auto [from, to] : {std::pair{P::Disk, P::Host}, std::pair{P::Host, P::Host}, std::pair{P::Disk, P::Disk}}) {
    const LeaderResult result = leader->transfer({from, to, {{0, 1}}, std::nullopt}, 10s);
    ASSERT_FALSE(result.status.ok());
    EXPECT_NE(result.status.error().message().find("rank 0: invalid transfer type"), std::string::npos);
    EXPECT_NE(result.status.error().message().find("rank 1: invalid transfer type"), std::string::npos);
  }
  if (!gpu) {
    const LeaderResult result = leader->transfer({P::Host, P::Device, {{0, 1}}, std::nullopt}, 10s);
    ASSERT_FALSE(result.status.ok());
    EXPECT_NE(result.status.error().message().find("Device pool is not configured"), std::string::npos);
  }
}

TEST_F(MultiProcess, KilledWorkerIsReportedByRank) {
  ASSERT_TRUE(leader->send(protocol::kPing, {}, 10s).status.ok());
  workers[1]->kill();
  const auto start = std::chrono::steady_clock::now();
  const LeaderResult result = leader->transfer({P::Host, P::Disk, {{0, 1}}, std::nullopt}, 1500ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  ASSERT_FALSE(result.status.ok());
  EXPECT_EQ(result.status.error().code(), ErrorCode::Timeout);
  EXPECT_NE(result.status.error().message().find("from rank(s) 1"), std::string::npos) << result.status.to_string();
  // Rank 0 did its part and the leader serves the next request.
  ASSERT_EQ(result.outcomes.size(), 1u);
  EXPECT_TRUE(result.outcomes[0].status.ok());
  EXPECT_FALSE(leader->send(protocol::kPing, {}, 500ms).status.ok());
}

}  // namespace
}  // namespace kvbm::testing
