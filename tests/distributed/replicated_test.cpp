// Replicated mode on two GPUs (label nccl): the packed broadcast in-process (two threads, one
// communicator each) at every block size and layout form, then real workers: rank 0 loads from
// host or disk and both ranks' device pools hold the same bytes; a rank killed mid-request is
// reported within the timeout and the survivors recover with a new communicator.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "distributed/replicated_broadcast.hpp"
#include "kvbm/distributed/leader.hpp"
#include "kvbm/distributed/nccl_communicator.hpp"
#include "layout/chunk_io.hpp"
#include "platform/cuda_runtime.hpp"
#include "support/leader_port.hpp"
#include "support/roundtrip.hpp"
#include "support/worker_process.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;
using P = BlockTransferPool;

class Replicated : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() < 2) GTEST_SKIP() << "needs two GPUs, found " << cuda::device_count();
    std::string reason;
    if (!NcclCommunicator::available(reason)) GTEST_SKIP() << "no NCCL: " << reason;
  }
  TempDir dir;
};

// Two communicators of one id, made at once (each blocks until the other joins).
std::array<std::unique_ptr<NcclCommunicator>, 2> communicator_pair() {
  const std::string id = NcclCommunicator::new_unique_id();
  std::array<std::unique_ptr<NcclCommunicator>, 2> made;
  std::thread other([&] { made[1] = std::make_unique<NcclCommunicator>(id, 1, 2, 1, 60s); });
  made[0] = std::make_unique<NcclCommunicator>(id, 0, 2, 0, 60s);
  other.join();
  return made;
}

TEST_F(Replicated, PackedBroadcastCarriesEveryByteAtEverySizeAndForm) {
  auto communicators = communicator_pair();
  std::mt19937_64 rng(7);
  for (std::size_t chunk : {std::size_t{1000}, std::size_t{4096}, std::size_t{65536}, std::size_t{2} << 20}) {
    const LayoutConfig config{.num_blocks = 24, .num_layers = 2, .outer_dim = 2, .page_size = 1, .inner_dim = chunk,
                              .dtype_bytes = 1};
    for (const LayoutChoice& choice : all_layout_choices()) {
      SCOPED_TRACE(choice.name() + " chunk " + std::to_string(chunk));
      std::array<LayoutPtr, 2> pools = {make_layout(config, StorageKind::device(0), choice, dir.path()),
                                        make_layout(config, StorageKind::device(1), choice, dir.path())};
      std::vector<Bytes> sent(config.num_blocks);
      for (std::size_t b = 0; b < config.num_blocks; ++b) {
        sent[b].resize(block_bytes(*pools[0]));
        for (auto& byte : sent[b]) byte = static_cast<std::byte>(rng());
        write_block(*pools[0], b, sent[b]);
        write_block(*pools[1], b, Bytes(sent[b].size(), std::byte{0xA5}));  // poison
      }
      // Scattered blocks, in more pieces than the staging holds at once (a small staging).
      const std::vector<std::size_t> blocks = {3, 17, 0, 9, 22, 5, 11, 14, 1};
      const std::size_t staging = 2 * 3 * block_bytes(*pools[0]);  // three blocks a piece
      std::array<Status, 2> outcomes;
      std::thread receiver([&] {
        try {
          PackedBroadcast(pools[1], {.staging_bytes = staging}).run(*communicators[1], blocks);
        } catch (const Error& error) {
          outcomes[1] = error;
        }
      });
      try {
        PackedBroadcast(pools[0], {.staging_bytes = staging}).run(*communicators[0], blocks);
      } catch (const Error& error) {
        outcomes[0] = error;
      }
      receiver.join();
      ASSERT_TRUE(outcomes[0].ok()) << outcomes[0].to_string();
      ASSERT_TRUE(outcomes[1].ok()) << outcomes[1].to_string();
      for (std::size_t b = 0; b < config.num_blocks; ++b) {
        const bool moved = std::find(blocks.begin(), blocks.end(), b) != blocks.end();
        EXPECT_EQ(read_block(*pools[1], b), moved ? sent[b] : Bytes(sent[b].size(), std::byte{0xA5})) << "block " << b;
      }
    }
  }
}

std::unique_ptr<WorkerProcess> start_worker(const std::string& endpoint, int rank, const std::string& dir) {
  return std::make_unique<WorkerProcess>(
      kvbm_cli(KVBM_CLI_PATH),
      std::vector<std::string>{"--leader", endpoint, "--rank", std::to_string(rank), "--world-size", "2", "--replicated",
                               "--nccl-timeout-ms", "4000", "--device", std::to_string(rank), "--device-blocks", "16",
                               "--host-blocks", "16", "--disk-blocks", "16", "--disk-dir", dir, "--layout", "ls-block",
                               "--num-layers", "3", "--page-size", "16", "--inner-dim", "256"});
}

std::vector<std::vector<std::uint64_t>> hashes(Leader& leader, P pool, const std::vector<std::size_t>& blocks) {
  const LeaderResult result =
      leader.send(protocol::kHash, {nlohmann::json{{"pool", to_string(pool)}, {"blocks", blocks}}.dump()}, 20s);
  EXPECT_TRUE(result.status.ok()) << result.status.to_string();
  std::vector<std::vector<std::uint64_t>> by_rank(2);
  for (const auto& outcome : result.outcomes) {
    if (outcome.rank >= 0 && !outcome.data.empty()) {
      by_rank.at(outcome.rank) = nlohmann::json::parse(outcome.data).at("hashes").get<std::vector<std::uint64_t>>();
    }
  }
  return by_rank;
}

TEST_F(Replicated, RankZeroLoadsAndEveryRankHoldsTheBlocksThenSurvivesAKilledRank) {
  std::string endpoint;
  LeaderOptions options;
  options.world_size = 2;
  options.replicated = true;
  auto leader = leader_on_free_port(options, endpoint);
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  for (int rank = 0; rank < 2; ++rank) workers.push_back(start_worker(endpoint, rank, dir.path()));
  leader->wait_for_workers(120s);  // registers both, then gives them a communicator

  // Host -> Device: rank 0's host blocks (the fill differs per rank) on both ranks' devices.
  ASSERT_TRUE(leader->send(protocol::kFill, {R"({"pool":"Host","blocks":[1,2,3,4],"seed":3})"}, 20s).status.ok());
  const auto host = hashes(*leader, P::Host, {1, 2, 3, 4});
  ASSERT_NE(host[0], host[1]);
  LeaderResult result = leader->transfer({P::Host, P::Device, {{1, 10}, {2, 5}, {3, 0}, {4, 15}}, std::nullopt}, 60s);
  ASSERT_TRUE(result.status.ok()) << result.status.to_string();
  auto device = hashes(*leader, P::Device, {10, 5, 0, 15});
  EXPECT_EQ(device[0], host[0]);
  EXPECT_EQ(device[1], host[0]);

  // Host -> Disk runs on rank 0 only; Disk -> Device then broadcasts.
  ASSERT_TRUE(leader->transfer({P::Host, P::Disk, {{1, 7}, {2, 8}}, std::nullopt}, 60s).status.ok());
  result = leader->transfer({P::Disk, P::Device, {{7, 3}, {8, 4}}, std::nullopt}, 60s);
  ASSERT_TRUE(result.status.ok()) << result.status.to_string();
  device = hashes(*leader, P::Device, {3, 4});
  const std::vector<std::uint64_t> first_two(host[0].begin(), host[0].begin() + 2);
  EXPECT_EQ(device[0], first_two);
  EXPECT_EQ(device[1], first_two);

  // Rank 1 dies: rank 0 gives up within its 4 s timeout per collective (the status word, the
  // blocks, the agreement: at most three) and says so.
  workers[1]->kill();
  const auto started = std::chrono::steady_clock::now();
  result = leader->transfer({P::Host, P::Device, {{1, 11}}, std::nullopt}, 20s);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 21s);
  ASSERT_FALSE(result.status.ok());
  EXPECT_NE(result.status.error().message().find("rank(s) 1"), std::string::npos) << result.status.to_string();
  const auto rank0 = std::find_if(result.outcomes.begin(), result.outcomes.end(), [](const auto& o) { return o.rank == 0; });
  ASSERT_NE(rank0, result.outcomes.end());
  ASSERT_FALSE(rank0->status.ok());
  EXPECT_EQ(rank0->status.error().code(), ErrorCode::Timeout) << rank0->status.to_string();
  EXPECT_NE(rank0->status.error().message().find("within 4000 ms"), std::string::npos) << rank0->status.to_string();

  // A new rank 1: the leader sees the restart, and a new communicator brings both back.
  workers[1] = start_worker(endpoint, 1, dir.path());
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (leader->restarted_ranks().empty() && std::chrono::steady_clock::now() < deadline) {
    (void)leader->send(protocol::kPing, {}, 500ms);  // an exchange, while the leader probes the old process
  }
  ASSERT_EQ(leader->restarted_ranks(), std::vector<int>{1});
  leader->acknowledge_restart(1);
  leader->init_replicated(60s);
  result = leader->transfer({P::Host, P::Device, {{2, 12}}, std::nullopt}, 60s);
  ASSERT_TRUE(result.status.ok()) << result.status.to_string();
  device = hashes(*leader, P::Device, {12});
  EXPECT_EQ(device[0][0], host[0][1]);
  EXPECT_EQ(device[1][0], host[0][1]);
}

}  // namespace
}  // namespace kvbm::testing
