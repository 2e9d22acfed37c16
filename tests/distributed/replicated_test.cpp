// Replicated mode, one process per rank (label nccl): the packed broadcast at every block size
// and layout form for two and three ranks, then real workers: rank 0 loads from host or disk and
// both ranks' device pools hold the same bytes, device -> device copies stay on each rank; a
// rank killed or stalled mid-request is reported within the timeout and the ranks recover with
// a new communicator. Ranks get a GPU each where there are enough, else share one
// (support/rank_placement.hpp).
#include <gtest/gtest.h>

#include <signal.h>

#include <nlohmann/json.hpp>

#include "distributed/broadcast_rank.hpp"
#include "distributed/replicated_broadcast.hpp"
#include "kvbm/distributed/leader.hpp"
#include "kvbm/distributed/nccl_communicator.hpp"
#include "support/leader_port.hpp"
#include "support/rank_placement.hpp"
#include "support/roundtrip.hpp"
#include "support/worker_process.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;
using P = BlockTransferPool;

class Replicated : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason;
    if (!NcclCommunicator::available(reason)) GTEST_SKIP() << "replicated mode cannot run here: " << reason;
  }
  TempDir dir;
};

// Runs broadcast_rank_main in `world` processes of one communicator; "" when each exited 0,
// else every rank's exit and output.
std::string run_broadcast_ranks(int world, const std::string& dir) {
  const std::vector<RankPlacement> placements = place_ranks(world);
  const std::string id = NcclCommunicator::new_unique_id();
  std::vector<WorkerProcess> ranks;
  for (int rank = 0; rank < world; ++rank) {
    // This test binary again: /proc/self/exe is resolved by the child before it execs.
    ranks.push_back(WorkerProcess::command("/proc/self/exe",
                                           broadcast_rank_args(id, rank, world, placements[rank].device),
                                           dir + "/rank" + std::to_string(rank) + ".log", placements[rank].env));
  }
  std::string failures;
  const auto deadline = std::chrono::steady_clock::now() + 300s;
  for (int rank = 0; rank < world; ++rank) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const std::optional<int> exit = ranks[rank].wait_exit(std::max(left, std::chrono::milliseconds(0)));
    if (exit == 0) continue;
    failures += "rank " + std::to_string(rank) + " (" + placements[rank].describe() + ") " +
                (exit ? "exited " + std::to_string(*exit) : std::string("still running after 300 s")) + ":\n" +
                read_text(dir + "/rank" + std::to_string(rank) + ".log") + "\n";
  }
  return failures;
}

TEST_F(Replicated, PackedBroadcastCarriesEveryByteAtEverySizeAndForm) {
  EXPECT_EQ(run_broadcast_ranks(2, dir.path()), "");
}

TEST_F(Replicated, PackedBroadcastReachesEveryRankOfThree) {
  EXPECT_EQ(run_broadcast_ranks(3, dir.path()), "");
}

// Error text of what `action` throws, "" when it throws nothing.
template <typename Action>
std::string thrown(Action&& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.message();
  }
  return "";
}

TEST_F(Replicated, BadOptionsAndBlocksAreRefusedByValue) {
  const LayoutConfig config{.num_blocks = 4, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 4096,
                            .dtype_bytes = 1};
  auto pool = Layout::allocate(config, StorageKind::device(0), LayoutForm::FullyContiguous);
  EXPECT_NE(thrown([&] { PackedBroadcast(pool, {.slots = 1}); }).find("not 1"), std::string::npos);
  EXPECT_NE(thrown([&] { PackedBroadcast(pool, {.overlapped_ctas = 0}); }).find("not 0"), std::string::npos);
  auto host = Layout::allocate(config, StorageKind::pinned(), LayoutForm::FullyContiguous);
  EXPECT_NE(thrown([&] { PackedBroadcast(host, {}); }).find("device pool"), std::string::npos);
  // A communicator of one rank: a broadcast to nobody, but the blocks are checked all the same.
  NcclCommunicator alone(NcclCommunicator::new_unique_id(), 0, 1, 0, 60s);
  PackedBroadcast broadcast(pool);
  EXPECT_NE(thrown([&] { broadcast.run(alone, std::vector<std::size_t>{1, 4}); }).find("block 4"), std::string::npos);
  EXPECT_EQ(thrown([&] { broadcast.run(alone, std::vector<std::size_t>{3, 0}); }), "");
}

std::unique_ptr<WorkerProcess> start_worker(const std::string& endpoint, int rank, const RankPlacement& placement,
                                            const std::string& dir) {
  return std::make_unique<WorkerProcess>(WorkerProcess::command(
      kvbm_cli(KVBM_CLI_PATH),
      {"worker", "--leader", endpoint, "--rank", std::to_string(rank), "--world-size", "2", "--replicated",
       "--nccl-timeout-ms", "4000", "--device", std::to_string(placement.device), "--device-blocks", "16",
       "--host-blocks", "16", "--disk-blocks", "16", "--disk-dir", dir, "--layout", "ls-block", "--num-layers", "3",
       "--page-size", "16", "--inner-dim", "256"},
      dir + "/worker" + std::to_string(rank) + ".log", placement.env));
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

// A replicated leader and two worker processes, registered and given a communicator.
struct WorkerPair {
  explicit WorkerPair(const std::string& dir) : placements(place_ranks(2)) {
    LeaderOptions options;
    options.world_size = 2;
    options.replicated = true;
    leader = leader_on_free_port(options, endpoint);
    for (int rank = 0; rank < 2; ++rank) workers.push_back(start_worker(endpoint, rank, placements[rank], dir));
    leader->wait_for_workers(120s);  // registers both, then gives them a communicator
  }
  std::string endpoint;
  std::unique_ptr<Leader> leader;
  std::vector<RankPlacement> placements;
  std::vector<std::unique_ptr<WorkerProcess>> workers;
};

// Rank 0's outcome in `result`, which must be an error that says the communicator is aborted.
void expect_rank_zero_aborted(const LeaderResult& result) {
  const auto rank0 = std::find_if(result.outcomes.begin(), result.outcomes.end(), [](const auto& o) { return o.rank == 0; });
  ASSERT_NE(rank0, result.outcomes.end()) << result.status.to_string();
  ASSERT_FALSE(rank0->status.ok());
  EXPECT_NE(rank0->status.error().message().find("the communicator is aborted"), std::string::npos)
      << rank0->status.to_string();
  if (rank0->status.error().code() == ErrorCode::Timeout) {
    EXPECT_NE(rank0->status.error().message().find("within 4000 ms"), std::string::npos) << rank0->status.to_string();
  }
}

TEST_F(Replicated, RankZeroLoadsEveryRankHoldsTheBlocksDeviceCopiesStayLocalThenAKilledRankIsSurvived) {
  WorkerPair pair(dir.path());
  auto& [endpoint, leader, placements, workers] = pair;

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

  // Device -> Device is local on each rank, with no broadcast: a block filled differently on
  // each rank is copied within each rank's own pool.
  ASSERT_TRUE(leader->send(protocol::kFill, {R"({"pool":"Device","blocks":[6],"seed":8})"}, 20s).status.ok());
  const auto filled = hashes(*leader, P::Device, {6});
  ASSERT_NE(filled[0], filled[1]);
  result = leader->transfer({P::Device, P::Device, {{6, 9}}, std::nullopt}, 60s);
  ASSERT_TRUE(result.status.ok()) << result.status.to_string();
  const auto copied = hashes(*leader, P::Device, {9});
  EXPECT_EQ(copied[0], filled[0]);
  EXPECT_EQ(copied[1], filled[1]);

  // Rank 1 dies: rank 0 gives up within its 4 s timeout per collective (the status word, the
  // blocks, the agreement: at most three) and says so. Over NVLink a collective with a dead
  // peer never ends, so the timeout ends it; NCCL's socket transport (ranks sharing a GPU) sees
  // the closed connection and fails the collective first. Either way the communicator is aborted.
  workers[1]->kill();
  const auto started = std::chrono::steady_clock::now();
  result = leader->transfer({P::Host, P::Device, {{1, 11}}, std::nullopt}, 20s);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 21s);
  ASSERT_FALSE(result.status.ok());
  EXPECT_NE(result.status.error().message().find("rank(s) 1"), std::string::npos) << result.status.to_string();
  expect_rank_zero_aborted(result);

  // A new rank 1: the leader sees the restart, and a new communicator brings both back.
  workers[1] = start_worker(endpoint, 1, placements[1], dir.path());
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

TEST_F(Replicated, AStalledRankTimesOutItsPeerAndBothRecoverWithoutARestart) {
  WorkerPair pair(dir.path());
  auto& [endpoint, leader, placements, workers] = pair;
  ASSERT_TRUE(leader->send(protocol::kFill, {R"({"pool":"Host","blocks":[1,2],"seed":4})"}, 20s).status.ok());
  const auto host = hashes(*leader, P::Host, {1, 2});

  // Rank 1 stops (SIGSTOP) without dying: rank 0's collectives wait for it, give up after their
  // timeout, abort the communicator and say so; the leader has no word from rank 1.
  workers[1]->signal(SIGSTOP);
  const auto started = std::chrono::steady_clock::now();
  LeaderResult result = leader->transfer({P::Host, P::Device, {{1, 11}}, std::nullopt}, 15s);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 16s);
  ASSERT_FALSE(result.status.ok());
  expect_rank_zero_aborted(result);

  // Rank 1 goes on, finds its peer gone and gives up in turn; a new communicator brings both
  // back, in the same processes.
  workers[1]->signal(SIGCONT);
  leader->init_replicated(60s);
  EXPECT_TRUE(leader->restarted_ranks().empty());
  result = leader->transfer({P::Host, P::Device, {{2, 12}}, std::nullopt}, 60s);
  ASSERT_TRUE(result.status.ok()) << result.status.to_string();
  const auto device = hashes(*leader, P::Device, {12});
  EXPECT_EQ(device[0][0], host[0][1]);
  EXPECT_EQ(device[1][0], host[0][1]);
}

}  // namespace
}  // namespace kvbm::testing
