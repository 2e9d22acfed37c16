// Leader and workers on real ZeroMQ sockets (ipc endpoints in a temp dir), in one process:
// malformed messages, rank conflicts, connector cancellation over the wire, plain Dynamo acks,
// and a worker that goes silent.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>

#include <functional>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/cpu_affinity.hpp"
#include "distributed/socket_ends.hpp"
#include "kvbm/distributed/leader.hpp"
#include "kvbm/distributed/worker.hpp"
#include "support/roundtrip.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;
using P = BlockTransferPool;

// A worker running on its own thread, with host and disk pools.
struct RunningWorker {
  RunningWorker(const std::string& endpoint, int rank, int world, const std::string& dir, std::size_t concurrency = 4,
                std::size_t chunk = 4096, std::optional<int> message_cpu = std::nullopt) {
    const LayoutConfig config{.num_blocks = 64, .num_layers = 2, .outer_dim = 2, .page_size = 1, .inner_dim = chunk,
                              .dtype_bytes = 1};
    auto context = std::make_shared<TransferContext>();
    handler = std::make_shared<BlockTransferHandler>(
        BlockPools{nullptr, make_layout(config, StorageKind::system(), {}, dir), make_layout(config, StorageKind::disk(0), {}, dir)},
        context, std::make_shared<ConnectorScheduler>());
    worker = std::make_unique<Worker>(WorkerOptions{endpoint, rank, world, concurrency, message_cpu}, handler);
    thread = std::thread([this] {
      result = worker->run();
      CPU_ZERO(&cpus_after_run);
      pthread_getaffinity_np(pthread_self(), sizeof cpus_after_run, &cpus_after_run);
      done = true;
    });
  }
  ~RunningWorker() { stop(); }
  void stop() {
    if (!thread.joinable()) return;
    worker->stop();
    thread.join();
  }
  std::shared_ptr<BlockTransferHandler> handler;
  std::unique_ptr<Worker> worker;
  std::thread thread;
  Status result;
  cpu_set_t cpus_after_run{};  // the serving thread's CPUs once run() has returned
  std::atomic<bool> done{false};
};

class Messaging : public ::testing::Test {
 protected:
  TempDir dir;
  std::string endpoint = "ipc://" + dir.path() + "/leader";

  static void expect_rank_errors(const LeaderResult& result, int world, const std::string& text) {
    ASSERT_FALSE(result.status.ok()) << "expected: " << text;
    EXPECT_NE(result.status.error().message().find(text), std::string::npos) << result.status.to_string();
    ASSERT_EQ(result.outcomes.size(), std::size_t(world)) << result.status.to_string();
    for (const auto& outcome : result.outcomes) {
      ASSERT_FALSE(outcome.status.ok()) << "rank " << outcome.rank;
      EXPECT_NE(outcome.status.error().message().find(text), std::string::npos) << outcome.status.to_string();
    }
  }
};

TEST_F(Messaging, MalformedMessagesAreAckedWithTheErrorAndServingGoesOn) {
  Leader leader(endpoint, 2);
  RunningWorker w0(endpoint, 0, 2, dir.path()), w1(endpoint, 1, 2, dir.path());
  leader.wait_for_workers(10s);
  const std::string good = R"({"from_pool":"Host","to_pool":"Disk","blocks":[[1,2]],"connector_req":null})";
  const std::string t = protocol::kTransferHandler;
  expect_rank_errors(leader.send(t, {}, 5s), 2, "exactly one data frame, got 0");
  expect_rank_errors(leader.send(t, {good, good}, 5s), 2, "exactly one data frame, got 2");
  expect_rank_errors(leader.send(t, {"\x01\x02 not json"}, 5s), 2, "not valid JSON");
  expect_rank_errors(leader.send(t, {R"({"from_pool":"Host"})"}, 5s), 2, "missing field 'to_pool'");
  expect_rank_errors(leader.send(t, {R"({"from_pool":"Host","to_pool":"Gpu","blocks":[]})"}, 5s), 2, "'to_pool' is 'Gpu'");
  expect_rank_errors(leader.send(t, {R"({"from_pool":"Host","to_pool":"Disk","blocks":[[64,0]]})"}, 5s), 2,
                     "source block index 64");
  expect_rank_errors(leader.send(t, {R"({"from_pool":"Host","to_pool":"Disk","blocks":[]})"}, 5s), 2, "names no blocks");
  expect_rank_errors(leader.send("no.such.handler", {"{}"}, 5s), 2, "no handler named 'no.such.handler'");
  expect_rank_errors(leader.send(t, {R"({"from_pool":"Disk","to_pool":"Host","blocks":[[1,1]]})"}, 5s), 2,
                     "invalid transfer type Disk -> Host");
  const LeaderResult ok = leader.send(t, {good}, 5s);
  EXPECT_TRUE(ok.status.ok()) << ok.status.to_string();
  EXPECT_EQ(ok.outcomes.size(), 2u);
}

TEST_F(Messaging, RankConflictsAreRejected) {
  Leader leader(endpoint, 2);
  RunningWorker w0(endpoint, 0, 2, dir.path()), w1(endpoint, 1, 2, dir.path());
  leader.wait_for_workers(10s);
  RunningWorker impostor(endpoint, 1, 2, dir.path());
  RunningWorker wrong_world(endpoint, 3, 4, dir.path());
  // The handshake goes on until both newcomers have been told no.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!(impostor.done && wrong_world.done) && std::chrono::steady_clock::now() < deadline) {
    leader.wait_for_workers(1s);
    std::this_thread::sleep_for(50ms);
  }
  impostor.stop();
  wrong_world.stop();
  ASSERT_FALSE(impostor.result.ok());
  EXPECT_NE(impostor.result.error().message().find("rank 1 is already taken"), std::string::npos)
      << impostor.result.to_string();
  ASSERT_FALSE(wrong_world.result.ok());
  EXPECT_NE(wrong_world.result.error().message().find("rank 3"), std::string::npos) << wrong_world.result.to_string();
  // The rightful workers still serve.
  EXPECT_TRUE(leader.send(protocol::kPing, {}, 5s).status.ok());
  EXPECT_THROW((Worker{WorkerOptions{endpoint, 2, 2, 1}, w0.handler}), Error);
}

TEST_F(Messaging, SilentWorkerIsNamedWithinTheTimeout) {
  Leader leader(endpoint, 2);
  RunningWorker w0(endpoint, 0, 2, dir.path()), w1(endpoint, 1, 2, dir.path());
  leader.wait_for_workers(10s);
  w1.stop();
  const auto start = std::chrono::steady_clock::now();
  const LeaderResult result = leader.send(protocol::kPing, {}, 500ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  ASSERT_FALSE(result.status.ok());
  EXPECT_EQ(result.status.error().code(), ErrorCode::Timeout);
  EXPECT_NE(result.status.error().message().find("no answer within 500 ms from rank(s) 1"), std::string::npos)
      << result.status.to_string();
  ASSERT_EQ(result.outcomes.size(), 1u);
  EXPECT_EQ(result.outcomes[0].rank, 0);
}

TEST_F(Messaging, RegistrationTimesOutNamingMissingRanks) {
  Leader leader(endpoint, 3);
  RunningWorker w0(endpoint, 0, 3, dir.path());
  try {
    leader.wait_for_workers(500ms);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Timeout);
    EXPECT_NE(error.message().find("missing ranks: 1, 2"), std::string::npos) << error.what();
  }
}

TEST_F(Messaging, ConnectorCancellationOverTheWire) {
  Leader leader(endpoint, 1);
  // One transfer at a time, large chunks: the first request keeps the worker busy.
  RunningWorker w0(endpoint, 0, 1, dir.path(), 1, 1u << 20);
  leader.wait_for_workers(10s);
  BlockTransferRequest busy{P::Host, P::Disk, {}, std::nullopt};
  for (std::size_t b = 0; b < 64; ++b) busy.blocks.emplace_back(b, 63 - b);
  std::vector<std::thread> senders;
  LeaderResult busy_result, cancelled_result;
  senders.emplace_back([&] { busy_result = leader.transfer(busy, 60s); });
  std::this_thread::sleep_for(50ms);
  senders.emplace_back([&] {
    cancelled_result = leader.transfer({P::Host, P::Disk, {{0, 1}}, ConnectorRequest{"req-cancel", "op-cancel"}}, 60s);
  });
  std::this_thread::sleep_for(50ms);
  const LeaderResult cancel = leader.cancel("op-cancel", 5s);
  for (auto& sender : senders) sender.join();
  EXPECT_TRUE(busy_result.status.ok()) << busy_result.status.to_string();
  EXPECT_TRUE(cancel.status.ok()) << cancel.status.to_string();
  ASSERT_FALSE(cancelled_result.status.ok());
  EXPECT_EQ(cancelled_result.status.error().code(), ErrorCode::Cancelled) << cancelled_result.status.to_string();

  // Completed connector operations show up once in get_finished().
  ASSERT_TRUE(leader.transfer({P::Host, P::Disk, {{2, 3}}, ConnectorRequest{"req-save", "op-save"}}, 10s).status.ok());
  const FinishedRequests finished = leader.get_finished();
  EXPECT_EQ(finished.saving, std::vector<std::string>{"req-save"});
  EXPECT_TRUE(finished.loading.empty());
  EXPECT_TRUE(leader.get_finished().saving.empty());
}

TEST_F(Messaging, PlainDynamoAcksCountAsSuccess) {
  Leader leader(endpoint, 1);
  // A peer that registers like kvbm but acknowledges like Dynamo: [id] alone.
  zmq::context_t context;
  zmq::socket_t sub(context, zmq::socket_type::sub), push(context, zmq::socket_type::push);
  connect_worker_end(sub, push, endpoint);
  std::atomic<bool> stop{false};
  std::thread peer([&] {
    while (!stop) {
      zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::multipart_t message(sub);
      zmq::multipart_t reply;
      reply.addstr(message[0].to_string());
      if (message[1].to_string() == protocol::kHello) {
        reply.addstr(protocol::kHello);
        reply.addstr(protocol::encode_outcome({0, {}, {{"nonce", 1}, {"world_size", 1}}}));
      }
      reply.send(push);
    }
  });
  leader.wait_for_workers(10s);
  const LeaderResult result = leader.send(protocol::kPing, {}, 5s);
  stop = true;
  peer.join();
  EXPECT_TRUE(result.status.ok()) << result.status.to_string();
  ASSERT_EQ(result.outcomes.size(), 1u);
  EXPECT_EQ(result.outcomes[0].rank, -1);
}

// Message threads pinned (WorkerOptions::message_cpu, the leader's message_cpu): requests are
// served, and run() gives its thread back its CPUs. CPUs the process may not use are named.
TEST_F(Messaging, PinnedEndpointsServeAndBadCpusAreNamed) {
  cpu_set_t usable;
  ASSERT_EQ(sched_getaffinity(0, sizeof usable, &usable), 0);
  const std::vector<int> cpus = calling_thread_cpus();
  const auto pick = [&](std::size_t i) { return cpus[i % cpus.size()]; };
  {
    Leader leader(endpoint, 2, pick(0));
    RunningWorker rank0(endpoint, 0, 2, dir.path(), 4, 4096, pick(1));
    RunningWorker rank1(endpoint, 1, 2, dir.path(), 4, 4096, pick(2));
    leader.wait_for_workers(10s);
    for (std::size_t block = 0; block < 8; ++block) {
      const LeaderResult result = leader.transfer({P::Host, P::Disk, {{block, block}}, std::nullopt}, 10s);
      ASSERT_TRUE(result.status.ok()) << result.status.to_string();
      EXPECT_EQ(result.outcomes.size(), 2u);
    }
    ASSERT_TRUE(leader.send(protocol::kShutdown, {}, 10s).status.ok());
    rank0.stop();
    rank1.stop();
    for (const RunningWorker* worker : {&rank0, &rank1}) {
      EXPECT_TRUE(worker->result.ok()) << worker->result.to_string();
      EXPECT_TRUE(CPU_EQUAL(&worker->cpus_after_run, &usable)) << "run() left its thread pinned";
    }
  }
  const auto expect_named = [](const std::function<void()>& make, const std::string& cpu) {
    try {
      make();
      ADD_FAILURE() << "CPU " << cpu << " was accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(error.message().find("CPU " + cpu + " "), std::string::npos) << error.message();
    }
  };
  auto handler = std::make_shared<BlockTransferHandler>(BlockPools{}, std::make_shared<TransferContext>(), nullptr);
  expect_named([&] { Worker worker(WorkerOptions{endpoint, 0, 1, 4, -1}, handler); }, "-1");
  expect_named([&] { Leader leader(endpoint, 1, CPU_SETSIZE); }, std::to_string(CPU_SETSIZE));
}

TEST(Protocol, IdsAndEndpoints) {
  EXPECT_EQ(protocol::decode_id(protocol::encode_id(0x0102030405060708ULL)), 0x0102030405060708ULL);
  EXPECT_EQ(protocol::encode_id(1), std::string("\0\0\0\0\0\0\0\x01", 8));
  EXPECT_THROW((void)protocol::decode_id("short"), Error);
  EXPECT_EQ(protocol::reply_endpoint("tcp://127.0.0.1:5555"), "tcp://127.0.0.1:5556");
  EXPECT_EQ(protocol::reply_endpoint("ipc:///tmp/x"), "ipc:///tmp/x.replies");
  for (const char* bad : {"tcp://127.0.0.1", "tcp://host:port", "tcp://h:65535", "udp://x:1", "tcp://h:-1"}) {
    EXPECT_THROW((void)protocol::reply_endpoint(bad), Error) << bad;
  }
  EXPECT_THROW((void)protocol::decode_outcome("{}"), Error);
}

}  // namespace
}  // namespace kvbm::testing
