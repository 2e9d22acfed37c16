// kvbm workers in Dynamo mode (`kvbm worker --protocol dynamo`), driven by a leader written here
// that speaks Dynamo 1.6's protocol frame by frame: the handshake, every accepted pool pair as
// Dynamo's transfer_blocks, plain acks for everything (failures and nonsense included); and
// kvbm's own Dynamo-mode leader against the same workers.
#include <gtest/gtest.h>

#include <random>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <nlohmann/json.hpp>

#include "kvbm/distributed/dynamo_leader.hpp"
#include "kvbm/distributed/protocol.hpp"
#include "platform/cuda_runtime.hpp"
#include "support/roundtrip.hpp"
#include "support/worker_process.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using P = BlockTransferPool;

constexpr std::size_t kBlocks = 8;
// The workers' block: 3 layers x K/V x 8 tokens x 100 elements x 2 bytes = 9600 bytes.
constexpr std::uint64_t kBytesPerBlock = 9600;

// Dynamo's leader end, by hand: PUB and PULL bound on a free even port and the next.
class RawDynamoLeader {
 public:
  RawDynamoLeader() {
    publisher_.set(zmq::sockopt::linger, 0);
    puller_.set(zmq::sockopt::linger, 0);
    std::mt19937 rng(std::random_device{}());
    for (int attempt = 0;; ++attempt) {
      const int port = 20000 + static_cast<int>(rng() % 6383) * 2;
      try {
        publisher_.bind("tcp://127.0.0.1:" + std::to_string(port));
        puller_.bind("tcp://127.0.0.1:" + std::to_string(port + 1));
        pub = "tcp://127.0.0.1:" + std::to_string(port);
        ack = "tcp://127.0.0.1:" + std::to_string(port + 1);
        return;
      } catch (const zmq::error_t&) {
        if (attempt == 50) throw;
        publisher_ = zmq::socket_t(context_, zmq::socket_type::pub);
        puller_ = zmq::socket_t(context_, zmq::socket_type::pull);
        publisher_.set(zmq::sockopt::linger, 0);
        puller_.set(zmq::sockopt::linger, 0);
      }
    }
  }

  std::uint64_t send(const std::string& handler, const std::vector<std::string>& frames = {}) {
    const std::uint64_t id = next_id_++;
    zmq::multipart_t message;
    message.addstr(protocol::encode_id(id));  // 8 bytes, big-endian
    message.addstr(handler);
    for (const auto& frame : frames) message.addstr(frame);
    message.send(publisher_);
    return id;
  }

  // Replies to `id` until `count` came or `wait` passed.
  std::vector<zmq::multipart_t> replies(std::uint64_t id, std::size_t count, std::chrono::milliseconds wait) {
    std::vector<zmq::multipart_t> got;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (got.size() < count) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      zmq::pollitem_t item{puller_.handle(), 0, ZMQ_POLLIN, 0};
      if (left.count() <= 0 || zmq::poll(&item, 1, left) == 0) break;
      zmq::multipart_t reply(puller_);
      if (protocol::decode_id(reply[0].to_string()) == id) got.push_back(std::move(reply));
    }
    return got;
  }

  std::string pub;
  std::string ack;

 private:
  zmq::context_t context_{1};
  zmq::socket_t publisher_{context_, zmq::socket_type::pub};
  zmq::socket_t puller_{context_, zmq::socket_type::pull};
  std::uint64_t next_id_ = 1;
};

std::unique_ptr<WorkerProcess> start_dynamo_worker(const std::string& pub, const std::string& ack, int rank,
                                                   const std::string& dir, bool gpu) {
  std::vector<std::string> args = {"--protocol", "dynamo", "--leader", pub, "--replies", ack, "--rank", std::to_string(rank),
                                   "--world-size", "2", "--disk-dir", dir, "--num-layers", "3", "--page-size", "8",
                                   "--inner-dim", "100", "--leader-wait-ms", "60000"};
  if (gpu) args.insert(args.end(), {"--device-blocks", std::to_string(kBlocks)});
  return std::make_unique<WorkerProcess>(kvbm_cli(KVBM_CLI_PATH), args);
}

// kvbm's own diagnostic messages still get kvbm's replies in Dynamo mode: the test checks bytes with them.
std::vector<std::vector<std::uint64_t>> hashes(RawDynamoLeader& leader, P pool, const std::vector<std::size_t>& blocks) {
  const auto id = leader.send(protocol::kHash, {nlohmann::json{{"pool", to_string(pool)}, {"blocks", blocks}}.dump()});
  std::vector<std::vector<std::uint64_t>> by_rank(2);
  for (auto& reply : leader.replies(id, 2, 20s)) {
    const protocol::Outcome outcome = protocol::decode_outcome(reply[2].to_string());
    EXPECT_TRUE(outcome.status.ok()) << outcome.status.to_string();
    if (outcome.status.ok()) by_rank.at(outcome.rank) = nlohmann::json::parse(outcome.data).at("hashes").get<std::vector<std::uint64_t>>();
  }
  return by_rank;
}

std::string dynamo_transfer(P from, P to, const std::vector<BlockPair>& blocks, const std::string& request_id) {
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& [src, dst] : blocks) pairs.push_back({src, dst});
  return nlohmann::ordered_json{{"from_pool", to_string(from)},
                                {"to_pool", to_string(to)},
                                {"blocks", pairs},
                                {"connector_req",
                                 {{"request_id", request_id},
                                  {"uuid", "1d093ad5-6b8b-4c0e-9d2e-" + request_id},
                                  {"requirement", nullptr},
                                  {"request_type", "Scheduled"}}}}
      .dump();
}

class DynamoMode : public ::testing::Test {
 protected:
  bool gpu = cuda::device_count() > 0;
  TempDir dir;
};

TEST_F(DynamoMode, ADynamoLeaderDrivesKvbmWorkersThroughTheHandshakeAndEveryPoolPair) {
  RawDynamoLeader leader;
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  for (int rank = 0; rank < 2; ++rank) workers.push_back(start_dynamo_worker(leader.pub, leader.ack, rank, dir.path(), gpu));

  // 1. worker_metadata, rounds until exactly two answers: [id, "worker_metadata", bincode].
  std::vector<zmq::multipart_t> answers;
  for (int round = 0; answers.size() != 2 && round < 120; ++round) answers = leader.replies(leader.send("worker_metadata"), 3, 500ms);
  ASSERT_EQ(answers.size(), 2u);
  const std::string expected = gpu ? "\x08\xfb\x80\x25"s : "\x00\xfb\x80\x25"s;  // 8 or 0 device blocks of 9600 bytes
  for (auto& answer : answers) {
    ASSERT_EQ(answer.size(), 3u);
    EXPECT_EQ(answer[1].to_string(), "worker_metadata");
    EXPECT_EQ(answer[2].to_string(), expected);
  }
  // 2. leader_metadata: 8 host and 8 disk blocks; plain acks [id].
  const auto sized = leader.send("leader_metadata", {"\x08\x08"s});
  auto acks = leader.replies(sized, 2, 20s);
  ASSERT_EQ(acks.size(), 2u);
  for (auto& ack : acks) EXPECT_EQ(ack.size(), 1u);
  // 3. ping until both pools are ready.
  bool ready = false;
  for (int round = 0; !ready && round < 120; ++round) ready = leader.replies(leader.send("ping"), 2, 500ms).size() == 2;
  ASSERT_TRUE(ready);

  // Every accepted pair (device ones with a GPU) as Dynamo's transfer_blocks; bytes checked with
  // kvbm's fill and hash messages. Each transfer is acked [id] by both, failed or not.
  const auto transfer = [&](P from, P to, const std::vector<BlockPair>& blocks, const std::string& request_id) {
    auto got = leader.replies(leader.send("transfer_blocks", {dynamo_transfer(from, to, blocks, request_id)}), 2, 30s);
    ASSERT_EQ(got.size(), 2u) << request_id;
    for (auto& ack : got) EXPECT_EQ(ack.size(), 1u) << request_id;
  };
  ASSERT_EQ(leader.replies(leader.send(protocol::kFill, {R"({"pool":"Host","blocks":[0,1],"seed":5})"}), 2, 20s).size(), 2u);
  const auto host = hashes(leader, P::Host, {0, 1});
  transfer(P::Host, P::Disk, {{0, 5}, {1, 6}}, "req-h2disk");
  EXPECT_EQ(hashes(leader, P::Disk, {5, 6}), host);
  if (gpu) {
    transfer(P::Host, P::Device, {{0, 2}, {1, 3}}, "req-h2d");
    EXPECT_EQ(hashes(leader, P::Device, {2, 3}), host);
    transfer(P::Device, P::Host, {{2, 7}, {3, 4}}, "req-d2h");
    EXPECT_EQ(hashes(leader, P::Host, {7, 4}), host);
    transfer(P::Device, P::Disk, {{3, 0}, {2, 1}}, "req-d2disk");
    EXPECT_EQ(hashes(leader, P::Disk, {1, 0}), host);
    transfer(P::Disk, P::Device, {{5, 6}, {6, 7}}, "req-disk2d");
    EXPECT_EQ(hashes(leader, P::Device, {6, 7}), host);
  } else {
    transfer(P::Host, P::Device, {{0, 2}}, "req-no-device");  // fails on both (no device pool): still acked
  }
  transfer(P::Disk, P::Host, {{0, 0}}, "req-refused");  // a pair the seed refuses: acked, logged
  transfer(P::Host, P::Disk, {{0, 999}}, "req-out-of-range");
  // Nonsense is acked too: Dynamo's leader panics on silence.
  for (const std::vector<std::string>& message :
       {std::vector<std::string>{"no_such_handler"}, std::vector<std::string>{"transfer_blocks", "{not json"},
        std::vector<std::string>{"leader_metadata", "\xfe"s}}) {
    const std::vector<std::string> frames(message.begin() + 1, message.end());
    auto got = leader.replies(leader.send(message[0], frames), 2, 20s);
    EXPECT_EQ(got.size(), 2u) << message[0];
  }
  // The workers still serve.
  transfer(P::Host, P::Disk, {{1, 2}}, "req-after");
  EXPECT_EQ(hashes(leader, P::Disk, {2})[0][0], host[0][1]);
}

TEST_F(DynamoMode, KvbmsDynamoLeaderDrivesKvbmWorkers) {
  std::unique_ptr<DynamoLeader> leader;
  std::string pub;
  std::string ack;
  std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; !leader; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 6383) * 2;
    pub = "tcp://127.0.0.1:" + std::to_string(port);
    ack = "tcp://127.0.0.1:" + std::to_string(port + 1);
    try {
      leader = std::make_unique<DynamoLeader>(DynamoLeaderOptions{.pub_endpoint = pub, .ack_endpoint = ack, .world_size = 2});
    } catch (const Error& error) {
      if (error.code() != ErrorCode::Io || attempt == 50) throw;
    }
  }
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  for (int rank = 0; rank < 2; ++rank) workers.push_back(start_dynamo_worker(pub, ack, rank, dir.path(), gpu));
  const auto metadata = leader->handshake(
      [](const std::vector<dynamo::WorkerMetadata>& answers) {
        EXPECT_EQ(answers.size(), 2u);
        return dynamo::LeaderMetadata{kBlocks, kBlocks};
      },
      60s);
  ASSERT_EQ(metadata.size(), 2u);
  EXPECT_EQ(metadata[0].bytes_per_block, kBytesPerBlock);
  ASSERT_EQ(leader->send(protocol::kFill, {R"({"pool":"Host","blocks":[3],"seed":9})"}, 20s).size(), 2u);
  leader->transfer({P::Host, P::Disk, {{3, 4}}, ConnectorRequest{"req-7", "op-7", "Immediate", "null"}}, 20s);
  const auto host = leader->send(protocol::kHash, {R"({"pool":"Host","blocks":[3]})"}, 20s);
  const auto disk = leader->send(protocol::kHash, {R"({"pool":"Disk","blocks":[4]})"}, 20s);
  const auto by_rank = [](const std::vector<std::string>& payloads) {
    std::map<int, std::string> out;
    for (const auto& payload : payloads) {
      const auto outcome = protocol::decode_outcome(payload);
      out[outcome.rank] = outcome.data;
    }
    return out;
  };
  EXPECT_EQ(by_rank(host), by_rank(disk));
  EXPECT_THROW(DynamoLeader(DynamoLeaderOptions{.pub_endpoint = pub, .ack_endpoint = ack, .world_size = 0}), Error);
}

}  // namespace
}  // namespace kvbm::testing
