// A real leader (this process) and two `kvbm worker` processes on loopback TCP: random blocks
// in every accepted direction the pools allow here (the Disk pool fully contiguous, the others
// layer-separate), every byte checked on every rank through XXH3 hashes of whole blocks; a
// worker killed with SIGKILL is named by rank.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <random>
#include <set>

#include "kvbm/distributed/leader.hpp"
#include "platform/cuda_runtime.hpp"
#include "support/leader_port.hpp"
#include "support/roundtrip.hpp"
#include "support/worker_process.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;
using P = BlockTransferPool;
constexpr std::size_t kBlocks = 48;

// A worker with Host and Disk pools (and a Device pool with a GPU) of kBlocks blocks each; its
// stderr to `log` when given.
std::unique_ptr<WorkerProcess> start_worker(const std::string& endpoint, int rank, int world, const std::string& dir,
                                            bool device, std::optional<std::string> log = std::nullopt) {
  std::vector<std::string> args = {"--leader", endpoint, "--rank", std::to_string(rank), "--world-size",
                                   std::to_string(world), "--host-blocks", std::to_string(kBlocks), "--disk-blocks",
                                   std::to_string(kBlocks), "--disk-dir", dir, "--layout", "ls-outer", "--disk-layout",
                                   "fc", "--num-layers", "3", "--page-size", "8", "--inner-dim", "100"};
  if (device) args.insert(args.end(), {"--device-blocks", std::to_string(kBlocks)});
  return std::make_unique<WorkerProcess>(kvbm_cli(KVBM_CLI_PATH), args, std::move(log));
}

std::string frame(const nlohmann::json& json) { return json.dump(); }

// Block hashes of `pool` on every rank: [rank][i] for the given blocks.
std::vector<std::vector<std::uint64_t>> hashes(Leader& leader, P pool, const std::vector<std::size_t>& blocks) {
  const LeaderResult result =
      leader.send(protocol::kHash, {frame({{"pool", to_string(pool)}, {"blocks", blocks}})}, 20s);
  EXPECT_TRUE(result.status.ok()) << result.status.to_string();
  std::vector<std::vector<std::uint64_t>> by_rank(leader.world_size());
  for (const auto& outcome : result.outcomes) {
    if (outcome.rank >= 0) by_rank[outcome.rank] = nlohmann::json::parse(outcome.data).at("hashes").get<std::vector<std::uint64_t>>();
  }
  return by_rank;
}

class MultiProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    leader = leader_on_free_port({.world_size = 2}, endpoint);
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
    auto dst = scattered_blocks(9, kBlocks, rng);
    if (from == to) {
      // Within one pool the destinations must not be sources: the first 9 of the others, shuffled.
      std::vector<std::size_t> others;
      for (std::size_t b = 0; b < kBlocks; ++b) {
        if (std::find(src.begin(), src.end(), b) == src.end()) others.push_back(b);
      }
      std::shuffle(others.begin(), others.end(), rng);
      dst.assign(others.begin(), others.begin() + 9);
    }
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
    move_and_verify(P::Device, P::Device, 16);
    // Within one pool, a destination that is also a source is refused on every rank.
    const LeaderResult result = leader->transfer({P::Device, P::Device, {{1, 2}, {2, 3}}, std::nullopt}, 10s);
    ASSERT_FALSE(result.status.ok());
    EXPECT_NE(result.status.error().message().find("rank 0: source block 2 overlaps destination block 2"),
              std::string::npos) << result.status.to_string();
    EXPECT_NE(result.status.error().message().find("rank 1: source block 2 overlaps destination block 2"),
              std::string::npos) << result.status.to_string();
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

// A second process claiming rank 0 after registration: its replies never count (30 transfers
// all succeed on the real ranks), and it is told no and exits with status 1.
TEST_F(MultiProcess, AnImpostorOfARegisteredRankIsRejectedAndIgnored) {
  const std::string log = dir.path() + "/impostor.log";
  auto impostor = start_worker(endpoint, 0, 2, dir.path(), false, log);
  for (int i = 0; i < 30; ++i) {
    const LeaderResult result = leader->transfer({P::Host, P::Disk, {{std::size_t(i), std::size_t(47 - i)}}, std::nullopt}, 20s);
    ASSERT_TRUE(result.status.ok()) << i << ": " << result.status.to_string();
    ASSERT_EQ(result.outcomes.size(), 2u);
  }
  EXPECT_EQ(impostor->wait_exit(30s), 1) << read_text(log);
  EXPECT_NE(read_text(log).find("rank 0 is already taken by another worker"), std::string::npos) << read_text(log);
  EXPECT_TRUE(leader->restarted_ranks().empty());
}

// A rank killed and started again: the leader reports it as restarted (its blocks are gone)
// on every request until the caller acknowledges it.
TEST_F(MultiProcess, ARestartedRankIsReportedUntilAcknowledged) {
  ASSERT_TRUE(leader->send(protocol::kFill, {frame({{"pool", "Host"}, {"blocks", {1, 2}}, {"seed", 5}})}, 20s).status.ok());
  workers[1]->kill();
  workers[1] = start_worker(endpoint, 1, 2, dir.path(), gpu);
  // Until the new process has announced itself and the old one missed its probe, rank 1 is
  // silent (Timeout); then Restarted.
  LeaderResult result;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  do {
    result = leader->send(protocol::kPing, {}, 2s);
  } while (!result.status.ok() && result.status.error().code() == ErrorCode::Timeout &&
           std::chrono::steady_clock::now() < deadline);
  ASSERT_FALSE(result.status.ok());
  EXPECT_EQ(result.status.error().code(), ErrorCode::Restarted) << result.status.to_string();
  EXPECT_NE(result.status.error().message().find("rank 1: rank 1 restarted; its blocks are gone"), std::string::npos)
      << result.status.to_string();
  EXPECT_EQ(leader->restarted_ranks(), std::vector<int>{1});
  const LeaderResult hashes =
      leader->send(protocol::kHash, {frame({{"pool", "Host"}, {"blocks", {1, 2}}})}, 20s);
  ASSERT_FALSE(hashes.status.ok());
  EXPECT_EQ(hashes.status.error().code(), ErrorCode::Restarted);
  ASSERT_EQ(hashes.outcomes.size(), 2u);
  EXPECT_TRUE(hashes.outcomes[0].status.ok()) << "rank 0 kept its blocks";
  leader->acknowledge_restart(1);
  EXPECT_TRUE(leader->send(protocol::kPing, {}, 20s).status.ok());
  EXPECT_THROW(leader->acknowledge_restart(1), Error);
  EXPECT_THROW(leader->acknowledge_restart(7), Error);
}

// Two processes claiming rank 0 at start-up: one registers, the other is told no.
TEST(MultiProcessStartUp, OfTwoClaimantsOfARankOneIsRejected) {
  TempDir dir;
  std::string endpoint;
  const auto leader_ptr = leader_on_free_port({.world_size = 1}, endpoint);
  Leader& leader = *leader_ptr;
  std::vector<std::unique_ptr<WorkerProcess>> claimants;
  for (int i = 0; i < 2; ++i) {
    claimants.push_back(start_worker(endpoint, 0, 1, dir.path(), false, dir.path() + "/claimant" + std::to_string(i)));
  }
  leader.wait_for_workers(30s);
  std::optional<int> rejected;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!rejected && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 2 && !rejected; ++i) {
      if (const auto status = claimants[i]->wait_exit(20ms)) {
        EXPECT_EQ(*status, 1);
        rejected = i;
      }
    }
  }
  ASSERT_TRUE(rejected.has_value()) << "neither claimant was rejected";
  const std::string log = read_text(dir.path() + "/claimant" + std::to_string(*rejected));
  EXPECT_NE(log.find("rank 0 is already"), std::string::npos) << log;
  const LeaderResult ping = leader.send(protocol::kPing, {}, 20s);
  EXPECT_TRUE(ping.status.ok()) << ping.status.to_string();
  EXPECT_FALSE(claimants[1 - *rejected]->wait_exit(0ms).has_value()) << "the registered claimant still serves";
}

}  // namespace
}  // namespace kvbm::testing
