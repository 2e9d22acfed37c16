// A `kvbm worker --remote` process and this process's agent, over tcp and shared memory: the
// worker's metadata and this agent's travel through the leader/worker channel, random blocks
// move both ways in every layout form, each checked through XXH3 hashes of whole blocks; the
// worker pushes blocks here with a notification; bad requests are answered and a killed
// worker fails transfers within the timeout.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <xxhash.h>

#include <random>

#include "distributed/remote_service.hpp"
#include "kvbm/distributed/leader.hpp"
#include "kvbm/remote/remote_agent.hpp"
#include "support/leader_port.hpp"
#include "support/roundtrip.hpp"
#include "support/worker_process.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t kBlocks = 32;
const LayoutConfig kShape{.num_blocks = kBlocks, .num_layers = 3, .outer_dim = 2, .page_size = 8, .inner_dim = 100,
                          .dtype_bytes = 2};

struct Case {
  std::string transports;
  std::string worker_layout;
};

std::string frame(const nlohmann::json& json) { return json.dump(); }

class RemoteProcess : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    leader = leader_on_free_port({.world_size = 1}, endpoint);
    worker = std::make_unique<WorkerProcess>(
        kvbm_cli(KVBM_CLI_PATH),
        std::vector<std::string>{"--leader", endpoint, "--host-blocks", std::to_string(kBlocks), "--host-kind",
                                 "system", "--layout", GetParam().worker_layout, "--num-layers", "3", "--page-size",
                                 "8", "--inner-dim", "100", "--remote", GetParam().transports, "--remote-name",
                                 "worker-" + std::to_string(::getpid())});
    leader->wait_for_workers(30s);
    const LeaderResult metadata = leader->send(protocol::kRemoteMetadata, {}, 20s);
    ASSERT_TRUE(metadata.status.ok()) << metadata.status.to_string();
    const auto reply = nlohmann::json::parse(metadata.outcomes.at(0).data);
    peer = agent.import_peer(from_hex(reply.at("metadata").get<std::string>(), "test"));
    host_layout = reply.at("layouts").at("host").get<std::uint32_t>();
  }

  LeaderResult send(const char* name, const nlohmann::json& data) { return leader->send(name, {frame(data)}, 20s); }

  std::vector<std::uint64_t> worker_hashes(const std::vector<std::size_t>& blocks) {
    const LeaderResult result = send(protocol::kHash, {{"pool", "Host"}, {"blocks", blocks}});
    EXPECT_TRUE(result.status.ok()) << result.status.to_string();
    return nlohmann::json::parse(result.outcomes.at(0).data).at("hashes").get<std::vector<std::uint64_t>>();
  }

  static std::vector<std::uint64_t> local_hashes(const Layout& layout, const std::vector<std::size_t>& blocks) {
    std::vector<std::uint64_t> hashes;
    for (std::size_t block : blocks) {
      const Bytes bytes = read_block(layout, block);
      hashes.push_back(XXH3_64bits(bytes.data(), bytes.size()));
    }
    return hashes;
  }

  static std::vector<BlockPair> zip(const std::vector<std::size_t>& a, const std::vector<std::size_t>& b) {
    std::vector<BlockPair> pairs;
    for (std::size_t i = 0; i < a.size(); ++i) pairs.emplace_back(a[i], b[i]);
    return pairs;
  }

  TempDir dir;
  std::string endpoint;
  std::unique_ptr<Leader> leader;
  std::unique_ptr<WorkerProcess> worker;
  // Every transfer of two blocks or more is cut across lanes (lane_min_bytes of one byte): the
  // killed worker's transfers fail on every lane, in time.
  RemoteAgent agent{{.name = "test-" + std::to_string(::getpid()), .transports = GetParam().transports, .lanes = 3,
                     .lane_min_bytes = 1, .transfer_timeout = 5s}};
  std::string peer;
  std::uint32_t host_layout = 0;
};

TEST_P(RemoteProcess, BlocksMoveBothWaysAndTheWorkerPushesWithANotification) {
  std::mt19937_64 rng(GetParam().transports.size() * 31 + GetParam().worker_layout.size());
  const auto mine = Layout::allocate(kShape, StorageKind::system(), LayoutForm::LayerSeparate, LayerOrder::OuterContiguous);
  poison(*mine, std::byte{0x5a});

  // Write: local random blocks into the worker's host pool.
  const auto local_src = scattered_blocks(7, kBlocks, rng);
  const auto remote_dst = scattered_blocks(7, kBlocks, rng);
  fill_random(*mine, local_src, rng);
  ASSERT_TRUE(agent.write(mine, peer, host_layout, zip(local_src, remote_dst)).wait().ok());
  EXPECT_EQ(worker_hashes(remote_dst), local_hashes(*mine, local_src));

  // Read: the worker's random blocks into poisoned local blocks; the others keep their poison.
  const auto remote_src = scattered_blocks(6, kBlocks, rng);
  ASSERT_TRUE(send(protocol::kFill, {{"pool", "Host"}, {"blocks", remote_src}, {"seed", 17}}).status.ok());
  std::vector<std::size_t> local_dst;
  for (std::size_t b = 0; b < kBlocks && local_dst.size() < remote_src.size(); ++b) {
    if (std::find(local_src.begin(), local_src.end(), b) == local_src.end()) local_dst.push_back(b);
  }
  const auto untouched = local_hashes(*mine, {kBlocks - 1});
  ASSERT_TRUE(agent.read(peer, host_layout, mine, zip(remote_src, local_dst)).wait().ok());
  EXPECT_EQ(local_hashes(*mine, local_dst), worker_hashes(remote_src));
  if (std::find(local_dst.begin(), local_dst.end(), kBlocks - 1) == local_dst.end()) {
    EXPECT_EQ(local_hashes(*mine, {kBlocks - 1}), untouched);
  }

  // The worker pushes into this agent's exported layout, and says so.
  const auto theirs = Layout::allocate(kShape, StorageKind::system(), LayoutForm::FullyContiguous);
  const std::uint32_t exported = agent.export_layout(theirs);
  const LeaderResult imported = send(protocol::kRemoteImport, {{"metadata", to_hex(agent.metadata())}});
  ASSERT_TRUE(imported.status.ok()) << imported.status.to_string();
  EXPECT_EQ(nlohmann::json::parse(imported.outcomes.at(0).data).at("peer"), agent.name());
  const LeaderResult pushed = send(protocol::kRemoteTransfer, {{"direction", "write"},
                                                               {"pool", "Host"},
                                                               {"blocks", remote_src},
                                                               {"peer", agent.name()},
                                                               {"layout", exported},
                                                               {"remote_blocks", {0, 1, 2, 3, 4, 5}},
                                                               {"notification", "blocks ready"}});
  ASSERT_TRUE(pushed.status.ok()) << pushed.status.to_string();
  const auto notification = agent.wait_notification(20s);
  ASSERT_TRUE(notification.has_value());
  EXPECT_EQ(notification->message, "blocks ready");
  EXPECT_EQ(local_hashes(*theirs, {0, 1, 2, 3, 4, 5}), worker_hashes(remote_src));
}

TEST_P(RemoteProcess, BadRequestsAreAnsweredAndAKilledWorkerFailsTransfersInTime) {
  const auto mine = Layout::allocate(kShape, StorageKind::system(), LayoutForm::FullyContiguous);
  const auto expect_error = [&](const char* name, const nlohmann::json& data, const std::string& text) {
    const LeaderResult result = send(name, data);
    ASSERT_FALSE(result.status.ok()) << text;
    EXPECT_NE(result.status.error().message().find(text), std::string::npos) << result.status.to_string();
  };
  expect_error(protocol::kRemoteImport, {{"metadata", "abc"}}, "odd hex length 3");
  expect_error(protocol::kRemoteImport, {{"metadata", "zz"}}, "'z' at 0 is not a hex digit");
  expect_error(protocol::kRemoteImport, {{"metadata", std::string(32, '0')}}, "does not start with");
  expect_error(protocol::kRemoteTransfer,
               {{"direction", "write"}, {"pool", "Host"}, {"blocks", {1}}, {"peer", "nobody"}, {"layout", 0},
                {"remote_blocks", {1}}},
               "no peer named nobody");
  expect_error(protocol::kRemoteTransfer,
               {{"direction", "sideways"}, {"pool", "Host"}, {"blocks", {1}}, {"peer", "x"}, {"layout", 0},
                {"remote_blocks", {1}}},
               "direction 'sideways'");
  expect_error(protocol::kRemoteTransfer,
               {{"direction", "read"}, {"pool", "Host"}, {"blocks", {1, 2}}, {"peer", "x"}, {"layout", 0},
                {"remote_blocks", {1}}},
               "2 blocks but 1 remote_blocks");
  const std::vector<BlockPair> past_end{{0, kBlocks}};
  const Status refused = agent.write(mine, peer, host_layout, past_end).wait();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::OutOfRange) << refused.to_string();
  EXPECT_TRUE(leader->send(protocol::kPing, {}, 20s).status.ok());

  worker->kill();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<BlockPair> pairs{{0, 0}, {1, 1}};
  Status status = agent.write(mine, peer, host_layout, pairs).wait();
  // A write into a dead peer's memory may be taken by the transport before the death is seen;
  // the next one cannot be.
  if (status.ok()) status = agent.write(mine, peer, host_layout, pairs).wait();
  EXPECT_FALSE(status.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 12s) << status.to_string();
}

INSTANTIATE_TEST_SUITE_P(Transports, RemoteProcess,
                         ::testing::Values(Case{"tcp", "fc"}, Case{"tcp", "ls-block"}, Case{"tcp", "ls-outer"},
                                           Case{"sm", "fc"}, Case{"sm", "ls-outer"}),
                         [](const auto& info) {
                           std::string name = info.param.transports + "_" + info.param.worker_layout;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace kvbm::testing
