// Leader and workers on real ZeroMQ sockets (ipc endpoints in a temp dir), in one process:
// malformed messages, rank conflicts, connector cancellation over the wire, plain Dynamo acks,
// and a worker that goes silent.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>

#include <condition_variable>
#include <functional>
#include <future>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/cpu_affinity.hpp"
#include "common/make_error.hpp"
#include "distributed/socket_ends.hpp"
#include "kvbm/distributed/leader.hpp"
#include "kvbm/distributed/worker.hpp"
#include "support/roundtrip.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;
using P = BlockTransferPool;

// What a test worker differs in.
struct TestWorkerSettings {
  std::size_t concurrency = 4;
  std::size_t chunk = 4096;
  std::optional<int> message_cpu;
  std::shared_ptr<ConnectorScheduler> scheduler = std::make_shared<ConnectorScheduler>();
  std::chrono::milliseconds drain_timeout = 30s;
  std::chrono::milliseconds leader_wait = 60s;
};

// A worker running on its own thread, with host and disk pools.
struct RunningWorker {
  RunningWorker(const std::string& endpoint, int rank, int world, const std::string& dir,
                TestWorkerSettings settings = {}) {
    const LayoutConfig config{.num_blocks = 64, .num_layers = 2, .outer_dim = 2, .page_size = 1,
                              .inner_dim = settings.chunk, .dtype_bytes = 1};
    auto context = std::make_shared<TransferContext>();
    scheduler = settings.scheduler;
    handler = std::make_shared<BlockTransferHandler>(
        BlockPools{nullptr, make_layout(config, StorageKind::system(), {}, dir), make_layout(config, StorageKind::disk(0), {}, dir)},
        context, scheduler);
    worker = std::make_unique<Worker>(WorkerOptions{.leader_endpoint = endpoint,
                                                    .rank = rank,
                                                    .world_size = world,
                                                    .concurrent_transfers = settings.concurrency,
                                                    .message_cpu = settings.message_cpu,
                                                    .leader_wait = settings.leader_wait,
                                                    .drain_timeout = settings.drain_timeout},
                                      handler);
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
  std::shared_ptr<ConnectorScheduler> scheduler;
  std::shared_ptr<BlockTransferHandler> handler;
  std::unique_ptr<Worker> worker;
  std::thread thread;
  Status result;
  cpu_set_t cpus_after_run{};  // the serving thread's CPUs once run() has returned
  std::atomic<bool> done{false};
};

// Holds the completion of one connector operation (by uuid) until the test opens the gate: the
// transfer keeps its admission slot, so later requests queue behind it for as long as the test
// needs. reached() says the operation got there.
class CompletionGate {
 public:
  explicit CompletionGate(std::string uuid) : uuid_(std::move(uuid)) {}
  ConnectorScheduler::CompletionObserver observer() {
    return [this](const ConnectorRequest& request, const Status&) {
      if (request.uuid != uuid_) return;
      std::unique_lock lock(mutex_);
      reached_ = true;
      changed_.notify_all();
      // Bounded, so that a failed assertion cannot leave a worker's destructor waiting forever.
      changed_.wait_for(lock, 60s, [&] { return open_; });
    };
  }
  [[nodiscard]] bool wait_reached(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return reached_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::string uuid_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool reached_ = false;
  bool open_ = false;
};

// A leader and a worker of one admission slot, whose first transfer (connector operation
// "op-busy") is held at a gate once its bytes have moved: later transfers queue behind it.
struct OneBusySlot {
  OneBusySlot(const std::string& endpoint, const std::string& dir, std::chrono::milliseconds drain_timeout = 30s)
      : leader(endpoint, 1),
        scheduler(std::make_shared<ConnectorScheduler>(ConnectorScheduler::kDefaultCapacity, gate.observer())),
        worker(endpoint, 0, 1, dir, {.concurrency = 1, .scheduler = scheduler, .drain_timeout = drain_timeout}) {
    leader.wait_for_workers(10s);
    busy = leader.send_async(protocol::kTransferHandler,
                             {encode_request({P::Host, P::Disk, {{0, 1}}, ConnectorRequest{"req-busy", "op-busy"}})}, 60s);
  }
  CompletionGate gate{"op-busy"};
  Leader leader;
  std::shared_ptr<ConnectorScheduler> scheduler;
  RunningWorker worker;
  std::future<LeaderResult> busy;
};

// Polls an observable state until it holds or `limit` passes.
bool eventually(const std::function<bool()>& holds, std::chrono::milliseconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!holds()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

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
  // Each newcomer announces itself; the leader tells both no without being asked to.
  EXPECT_TRUE(eventually([&] { return impostor.done && wrong_world.done; }));
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
  OneBusySlot slot(endpoint, dir.path());
  auto& [gate, leader, scheduler, w0, busy] = slot;
  ASSERT_TRUE(gate.wait_reached(20s));
  auto queued = leader.send_async(
      protocol::kTransferHandler, {encode_request({P::Host, P::Disk, {{2, 3}}, ConnectorRequest{"req-cancel", "op-cancel"}})},
      60s);
  ASSERT_TRUE(eventually([&] { return scheduler->state("op-cancel") == ConnectorScheduler::State::Queued; }));
  const LeaderResult cancel = leader.cancel("op-cancel", 10s);
  EXPECT_TRUE(cancel.status.ok()) << cancel.status.to_string();
  gate.open();
  const LeaderResult busy_result = busy.get();
  const LeaderResult cancelled_result = queued.get();
  EXPECT_TRUE(busy_result.status.ok()) << busy_result.status.to_string();
  ASSERT_FALSE(cancelled_result.status.ok());
  EXPECT_EQ(cancelled_result.status.error().code(), ErrorCode::Cancelled) << cancelled_result.status.to_string();

  // Finished operations cannot be cancelled, and a uuid used again later is a new operation.
  const LeaderResult late = leader.cancel("op-busy", 10s);
  ASSERT_FALSE(late.status.ok());
  EXPECT_NE(late.status.error().message().find("op-busy has already finished"), std::string::npos)
      << late.status.to_string();
  const LeaderResult again =
      leader.transfer({P::Host, P::Disk, {{4, 5}}, ConnectorRequest{"req-again", "op-cancel"}}, 10s);
  EXPECT_TRUE(again.status.ok()) << again.status.to_string();

  // An operation cancelled before it arrives is skipped when it does.
  ASSERT_TRUE(leader.cancel("op-early", 10s).status.ok());
  const LeaderResult early = leader.transfer({P::Host, P::Disk, {{6, 7}}, ConnectorRequest{"req-early", "op-early"}}, 10s);
  ASSERT_FALSE(early.status.ok());
  EXPECT_EQ(early.status.error().code(), ErrorCode::Cancelled);

  // Completed connector operations show up once in get_finished().
  (void)leader.get_finished();
  ASSERT_TRUE(leader.transfer({P::Host, P::Disk, {{2, 3}}, ConnectorRequest{"req-save", "op-save"}}, 10s).status.ok());
  const FinishedRequests finished = leader.get_finished();
  EXPECT_EQ(finished.saving, std::vector<std::string>{"req-save"});
  EXPECT_TRUE(finished.loading.empty());
  EXPECT_TRUE(leader.get_finished().saving.empty());
}

TEST_F(Messaging, CancelsOfUnknownOperationsUseBoundedMemory) {
  Leader leader(endpoint, 1);
  auto scheduler = std::make_shared<ConnectorScheduler>(64);
  RunningWorker w0(endpoint, 0, 1, dir.path(), {.scheduler = scheduler});
  leader.wait_for_workers(10s);
  for (int i = 0; i < 300; ++i) {
    const std::string uuid = fmt::format("{:0>1000}", i);
    ASSERT_TRUE(leader.cancel(uuid, 10s).status.ok()) << i;
  }
  EXPECT_LE(scheduler->tracked(), 64u);
  const LeaderResult too_long = leader.cancel(std::string(kMaxConnectorIdBytes + 1, 'u'), 10s);
  ASSERT_FALSE(too_long.status.ok());
  EXPECT_EQ(too_long.status.error().code(), ErrorCode::InvalidArgument);
  EXPECT_NE(too_long.status.error().message().find("is 1025 bytes long"), std::string::npos) << too_long.status.to_string();
}

// Stopping: a request waiting for a slot is answered Cancelled, the running one finishes first.
TEST_F(Messaging, StopAnswersWaitingRequestsAndLetsTheRunningOneFinish) {
  OneBusySlot slot(endpoint, dir.path());
  auto& [gate, leader, scheduler, w0, busy] = slot;
  ASSERT_TRUE(gate.wait_reached(20s));
  auto waiting = leader.send_async(protocol::kTransferHandler, {encode_request({P::Host, P::Disk, {{2, 3}}, std::nullopt})}, 60s);
  ASSERT_TRUE(leader.send(protocol::kPing, {}, 10s).status.ok());  // the worker has read the request before the ping
  w0.worker->stop();
  const LeaderResult not_started = waiting.get();
  ASSERT_FALSE(not_started.status.ok());
  EXPECT_EQ(not_started.status.error().code(), ErrorCode::Cancelled) << not_started.status.to_string();
  EXPECT_NE(not_started.status.error().message().find("rank 0 is shutting down"), std::string::npos);
  EXPECT_FALSE(w0.done);  // still draining: the running transfer is held at the gate
  gate.open();
  const LeaderResult finished = busy.get();
  EXPECT_TRUE(finished.status.ok()) << finished.status.to_string();
  w0.stop();
  EXPECT_TRUE(w0.result.ok()) << w0.result.to_string();
  EXPECT_EQ(w0.worker->abandoned_transfers(), 0u);
}

TEST_F(Messaging, StopPastTheDrainBoundAnswersTheRunningTransferWithAnError) {
  OneBusySlot slot(endpoint, dir.path(), 100ms);
  auto& [gate, leader, scheduler, w0, busy] = slot;
  ASSERT_TRUE(gate.wait_reached(20s));
  w0.worker->stop();
  const LeaderResult result = busy.get();
  ASSERT_FALSE(result.status.ok());
  EXPECT_EQ(result.status.error().code(), ErrorCode::Timeout) << result.status.to_string();
  EXPECT_NE(result.status.error().message().find("shut down before the transfer finished"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return w0.done.load(); }));
  EXPECT_EQ(w0.worker->abandoned_transfers(), 1u);
  gate.open();  // the transfer ends; the worker may now be destroyed
}

TEST_F(Messaging, WorkerWithoutALeaderGivesUpNamingTheEndpoint) {
  RunningWorker lonely(endpoint, 0, 1, dir.path(), {.leader_wait = 300ms});
  ASSERT_TRUE(eventually([&] { return lonely.done.load(); }));
  lonely.stop();
  ASSERT_FALSE(lonely.result.ok());
  EXPECT_EQ(lonely.result.error().code(), ErrorCode::Timeout);
  EXPECT_NE(lonely.result.error().message().find("no word from the leader at " + endpoint + " within 300 ms"),
            std::string::npos)
      << lonely.result.to_string();
}

// A worker that does not read fills its queue: the send fails saying so, nothing is dropped.
TEST_F(Messaging, AFullPublishQueueFailsTheSendInsteadOfDropping) {
  Leader leader(LeaderOptions{.message_endpoint = endpoint, .world_size = 1, .publish_hwm = 2});
  zmq::context_t context;
  zmq::socket_t sub(context, zmq::socket_type::sub), push(context, zmq::socket_type::push);
  sub.set(zmq::sockopt::rcvhwm, 1);
  connect_worker_end(sub, push, endpoint);
  const std::string frame(1u << 20, 'x');
  std::string refusal;
  for (int i = 0; i < 200 && refusal.empty(); ++i) {
    const LeaderResult result = leader.send(protocol::kPing, {frame}, 50ms);
    ASSERT_FALSE(result.status.ok());
    EXPECT_EQ(result.status.error().code(), ErrorCode::Timeout);
    if (result.status.error().message().find("could not publish") != std::string::npos) {
      refusal = result.status.error().message();
    }
  }
  EXPECT_NE(refusal.find("a worker's queue of 2 messages is full"), std::string::npos) << refusal;
  const LeaderResult oversized = leader.send(protocol::kPing, {std::string(17u << 20, 'x')}, 1s);
  ASSERT_FALSE(oversized.status.ok());
  EXPECT_NE(oversized.status.error().message().find("larger than the 16777216 allowed"), std::string::npos)
      << oversized.status.to_string();
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
        reply.addstr(protocol::encode_outcome({0, 1, {}, protocol::encode_hello({1, 1})}));
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

// A peer that registers like a kvbm worker (rank 0, nonce 1) and answers each message with the
// payloads `answers` gives for its handler, each as [id, handler, payload].
class ScriptedPeer {
 public:
  using Answers = std::function<std::vector<std::string>(const std::string& handler)>;
  ScriptedPeer(const std::string& endpoint, Answers answers) : answers_(std::move(answers)) {
    connect_worker_end(sub_, push_, endpoint);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedPeer() {
    stop_ = true;
    thread_.join();
  }

 private:
  void serve() {
    while (!stop_) {
      zmq::pollitem_t item{sub_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::multipart_t message(sub_);
      const std::string handler = message[1].to_string();
      for (const std::string& payload : answers_(handler)) {
        zmq::multipart_t reply;
        reply.addstr(message[0].to_string());
        reply.addstr(handler);
        reply.addstr(payload);
        reply.send(push_);
      }
    }
  }
  Answers answers_;
  zmq::context_t context_;
  zmq::socket_t sub_{context_, zmq::socket_type::sub};
  zmq::socket_t push_{context_, zmq::socket_type::push};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(Messaging, MalformedRepliesNeverEndTheLeader) {
  Leader leader(endpoint, 1);
  const std::string good_hello = protocol::encode_outcome({0, 1, {}, protocol::encode_hello({1, 1})});
  // Handshake data that is not a hello's; then payloads no handler's reply may be.
  const std::vector<std::string> malformed_hellos = {
      R"({"rank":0,"ok":true,"data":5})",
      R"({"rank":0,"nonce":1,"ok":true,"data":{"nonce":"abc","world_size":1}})",
      R"({"rank":0,"nonce":1,"ok":true,"data":{"nonce":1,"world_size":-3}})",
      R"({"rank":0,"nonce":1,"ok":true,"data":{"nonce":0,"world_size":1}})",
  };
  const std::vector<std::string> malformed = {
      R"({"rank":"0","ok":true})",
      R"({"rank":0,"ok":"yes"})",
      R"({"rank":99999999999,"ok":true})",
      R"({"rank":0,"nonce":-1,"ok":true})",
      R"({"rank":0,"ok":true})",  // no nonce: no process of rank 0 sent it
      R"({"rank":0,"nonce":1,"ok":false,"code":5,"error":["x"]})",
      "not json",
      "\xff\xfe{",
      "[1,2]",
      std::string(80000, '[') + std::string(80000, ']'),
  };
  ScriptedPeer peer(endpoint, [&](const std::string& handler) {
    std::vector<std::string> out = malformed;
    if (handler == protocol::kHello) {
      out.insert(out.end(), malformed_hellos.begin(), malformed_hellos.end());
      out.push_back(good_hello);
    }
    if (handler == protocol::kPing) {
      // Another process's reply for rank 0 (nonce 2) must not count as rank 0's.
      out.push_back(protocol::encode_outcome({0, 2, make_error(ErrorCode::Io, "impostor"), {}}));
      out.push_back(protocol::encode_outcome({0, 1, {}, {}}));
    }
    if (handler == "fail.io") out.push_back(protocol::encode_outcome({0, 1, make_error(ErrorCode::Io, "disk \xff gone"), {}}));
    return out;
  });
  leader.wait_for_workers(10s);
  const LeaderResult ping = leader.send(protocol::kPing, {}, 10s);
  EXPECT_TRUE(ping.status.ok()) << ping.status.to_string();
  // A rank's error code reaches the caller (an I/O failure stays io), its text made valid UTF-8.
  const LeaderResult io = leader.send("fail.io", {}, 10s);
  ASSERT_FALSE(io.status.ok());
  EXPECT_EQ(io.status.error().code(), ErrorCode::Io) << io.status.to_string();
  ASSERT_EQ(io.outcomes.size(), 1u);
  EXPECT_EQ(io.outcomes[0].status.error().code(), ErrorCode::Io);
  EXPECT_NE(io.status.error().message().find("disk \\xff gone"), std::string::npos) << io.status.to_string();
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
    RunningWorker rank0(endpoint, 0, 2, dir.path(), {.message_cpu = pick(1)});
    RunningWorker rank1(endpoint, 1, 2, dir.path(), {.message_cpu = pick(2)});
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
