// Real `kvbm` processes on loopback TCP, driven by a leader in this process with hostile
// messages and faults. Each message gets a clear error (or, where the protocol has no reply,
// is ignored) and the worker keeps serving; signals stop it with status 0 after it has
// answered what it owes; bad endpoints and settings are one-line errors, never an abort.
#include <gtest/gtest.h>

#include <csignal>
#include <future>
#include <sstream>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kvbm/distributed/leader.hpp"
#include "support/leader_port.hpp"
#include "support/roundtrip.hpp"
#include "support/worker_process.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;
using P = BlockTransferPool;

// A worker of 16 Host and 16 Disk blocks (at most 1000 block pairs a request), serving a leader
// that sends messages up to 64 MiB (the worker's limit is KVBM_MAX_MESSAGE_BYTES' 16 MiB).
class HostileInput : public ::testing::Test {
 protected:
  void SetUp() override {
    leader = leader_on_free_port({.world_size = 1, .max_message_bytes = std::size_t{64} << 20}, endpoint);
    worker = std::make_unique<WorkerProcess>(WorkerProcess::command(
        kvbm_cli(KVBM_CLI_PATH),
        {"worker", "--leader", endpoint, "--rank", "0", "--world-size", "1", "--host-blocks", "16", "--disk-blocks", "16",
         "--disk-dir", dir.path(), "--num-layers", "2", "--page-size", "4", "--inner-dim", "64"},
        worker_log(), {"KVBM_MAX_BLOCK_PAIRS=1000"}));
    leader->wait_for_workers(30s);
  }

  [[nodiscard]] std::string worker_log() const { return dir.path() + "/worker.log"; }

  void expect_alive() {
    const LeaderResult ping = leader->send(protocol::kPing, {}, 10s);
    EXPECT_TRUE(ping.status.ok()) << "the worker stopped serving: " << ping.status.to_string() << "\n"
                                  << read_text(worker_log());
  }

  TempDir dir;
  std::string endpoint;
  std::unique_ptr<Leader> leader;
  std::unique_ptr<WorkerProcess> worker;
};

struct HostileCase {
  std::string handler;
  std::vector<std::string> frames;
  ErrorCode code;
  std::string text;  // in the worker's error message
};

std::string blocks_request(std::size_t pairs, bool canonical) {
  BlockTransferRequest request{P::Host, P::Disk, {}, std::nullopt};
  for (std::size_t i = 0; i < pairs; ++i) request.blocks.emplace_back(i % 16, (i + 1) % 16);
  std::string text = encode_request(request);
  if (!canonical) text.insert(1, " ");  // the same request, read by the JSON reader
  return text;
}

TEST_F(HostileInput, EveryMalformedMessageIsAnsweredAndTheWorkerServesOn) {
  const std::string t = protocol::kTransferHandler;
  const std::string nested = R"({"from_pool":"Host","to_pool":"Disk","blocks":)" + std::string(80000, '[') +
                             std::string(80000, ']') + "}";
  const std::vector<HostileCase> cases = {
      {"\xff", {"{}"}, ErrorCode::InvalidArgument, "no handler named '\\xff'"},
      {"kvbm.\xc3\x28\x01", {"{}"}, ErrorCode::InvalidArgument, "no handler named 'kvbm.\\xc3(\\x01'"},
      {protocol::kFill, {R"({"pool":"Host","blocks":[1],"seed":"abc"})"}, ErrorCode::InvalidArgument,
       R"('seed' must be a non-negative integer, got "abc")"},
      {protocol::kFill, {R"({"pool":"Host","blocks":[1],"seed":-1})"}, ErrorCode::InvalidArgument,
       "'seed' must be a non-negative integer, got -1"},
      {protocol::kFill, {R"({"pool":"Host","blocks":"all"})"}, ErrorCode::InvalidArgument, "'blocks' must be an array"},
      {protocol::kHash, {R"({"pool":7,"blocks":[1]})"}, ErrorCode::InvalidArgument, "'pool' must be a string, got 7"},
      {protocol::kHash, {R"({"pool":"Host","blocks":[99]})"}, ErrorCode::OutOfRange, "block 99 is not an index below 16"},
      {protocol::kHash, {R"({"pool":"Gpu\u0000","blocks":[1]})"}, ErrorCode::InvalidArgument, "unknown pool 'Gpu\\x00'"},
      {protocol::kCancel, {R"({"uuid":5})"}, ErrorCode::InvalidArgument, "'uuid' must be a string, got 5"},
      {protocol::kCancel, {"["}, ErrorCode::InvalidArgument, "kvbm.cancel data is not valid JSON"},
      {protocol::kCancel, {"{}", "{}"}, ErrorCode::InvalidArgument, "exactly one data frame, got 2"},
      {t, {nested}, ErrorCode::InvalidArgument, "nests deeper than 32 levels"},
      {t, {std::string(17u << 20, ' ')}, ErrorCode::InvalidArgument,
       "bytes is larger than the 16777216 allowed (KVBM_MAX_MESSAGE_BYTES)"},
      {t, {blocks_request(1001, true)}, ErrorCode::InvalidArgument, "1001 block pairs, more than the 1000 allowed"},
      {t, {blocks_request(1001, false)}, ErrorCode::InvalidArgument, "1001 block pairs, more than the 1000 allowed"},
      {t, {blocks_request(2000, false)}, ErrorCode::InvalidArgument, "holds 2002 arrays and objects, more than the 1004"},
      {t, {encode_request({P::Host, P::Disk, {{0, 99}}, std::nullopt})}, ErrorCode::OutOfRange, "block index 99"},
      {t,
       {encode_request({P::Host, P::Disk, {{0, 1}}, ConnectorRequest{"r", std::string(2000, 'u')}})},
       ErrorCode::InvalidArgument,
       "'uuid' is 2000 bytes long"},
  };
  for (const HostileCase& c : cases) {
    SCOPED_TRACE(printable(c.handler) + " " + printable(c.frames.front(), 80));
    const LeaderResult result = leader->send(c.handler, c.frames, 20s);
    ASSERT_FALSE(result.status.ok());
    ASSERT_EQ(result.outcomes.size(), 1u) << result.status.to_string();
    EXPECT_EQ(result.outcomes[0].status.error().code(), c.code) << result.status.to_string();
    EXPECT_EQ(result.status.error().code(), c.code) << result.status.to_string();
    EXPECT_NE(result.status.error().message().find(c.text), std::string::npos) << result.status.to_string();
    expect_alive();
  }
  // Rejections carry no reply: malformed ones, and ones for another process, are ignored.
  for (const std::string data : {R"({"nonce":"abc","reason":"x"})", R"({"nonce":7,"reason":"not you"})", "[[[", "{}"}) {
    const LeaderResult result = leader->send(protocol::kReject, {data}, 300ms);
    EXPECT_EQ(result.status.error().code(), ErrorCode::Timeout) << data;
    expect_alive();
  }
}

// A frame past four times the worker's message limit makes ZeroMQ drop the worker's connection
// for good: the worker notices, connects again and announces itself, and serves on.
TEST(HostileLeader, AHundredMebibyteFrameCutsTheWorkerOffOnlyUntilItReconnects) {
  TempDir dir;
  std::string endpoint;
  auto leader = leader_on_free_port({.world_size = 1, .max_message_bytes = std::size_t{128} << 20}, endpoint);
  WorkerProcess worker = WorkerProcess::command(
      kvbm_cli(KVBM_CLI_PATH),
      {"worker", "--leader", endpoint, "--rank", "0", "--world-size", "1", "--host-blocks", "16", "--disk-blocks", "16",
       "--disk-dir", dir.path(), "--num-layers", "2", "--page-size", "4", "--inner-dim", "64"},
      dir.path() + "/worker.log");
  leader->wait_for_workers(30s);
  const LeaderResult flood = leader->send(protocol::kPing, {std::string(std::size_t{100} << 20, 'x')}, 2s);
  EXPECT_FALSE(flood.status.ok()) << "a 100 MiB frame was delivered past the worker's 64 MiB limit";
  const auto cut_off = std::chrono::steady_clock::now();
  Status ping = Error(ErrorCode::Timeout, "not tried");
  for (int attempt = 0; attempt < 30 && !ping.ok(); ++attempt) ping = leader->send(protocol::kPing, {}, 1s).status;
  ASSERT_TRUE(ping.ok()) << ping.to_string() << "\n" << read_text(dir.path() + "/worker.log");
  std::cout << "answered again after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - cut_off).count()
            << " ms\n";
  BlockTransferRequest request{P::Host, P::Disk, {{1, 2}, {3, 4}}, std::nullopt};
  const LeaderResult transfer = leader->transfer(request, 20s);
  EXPECT_TRUE(transfer.status.ok()) << transfer.status.to_string();
  EXPECT_NE(read_text(dir.path() + "/worker.log").find("was dropped"), std::string::npos);
}

// One transfer runs and two wait; a flood of twenty gets the rest refused, naming the bound, and
// the worker serves on.
TEST(HostileLeader, AFloodPastTheWaitingBoundIsRefusedAndTheWorkerServesOn) {
  TempDir dir;
  std::string endpoint;
  auto leader = leader_on_free_port({.world_size = 1}, endpoint);
  WorkerProcess worker = WorkerProcess::command(
      kvbm_cli(KVBM_CLI_PATH),
      {"worker", "--leader", endpoint, "--rank", "0", "--world-size", "1", "--host-blocks", "2048", "--disk-blocks",
       "2048", "--disk-dir", dir.path(), "--num-layers", "2", "--page-size", "4", "--inner-dim", "1024"},
      dir.path() + "/worker.log", {"KVBM_MAX_WAITING_TRANSFERS=2", "DYN_KVBM_MAX_CONCURRENT_TRANSFERS=1"});
  leader->wait_for_workers(30s);
  BlockTransferRequest whole{P::Host, P::Disk, {}, std::nullopt};  // 64 MiB to disk
  for (std::size_t b = 0; b < 2048; ++b) whole.blocks.emplace_back(b, b);
  std::vector<std::future<LeaderResult>> flood;
  for (int i = 0; i < 20; ++i) flood.push_back(leader->send_async(protocol::kTransferHandler, {encode_request(whole)}, 60s));
  int refused = 0;
  int done = 0;
  for (auto& result : flood) {
    const LeaderResult r = result.get();
    if (r.status.ok()) {
      ++done;
      continue;
    }
    ++refused;
    EXPECT_EQ(r.status.error().code(), ErrorCode::Cancelled) << r.status.to_string();
    EXPECT_NE(r.status.error().message().find("2 transfers wait for a slot already"), std::string::npos)
        << r.status.to_string();
  }
  EXPECT_GE(refused, 1);
  EXPECT_GE(done, 3);  // the one running and the two waiting
  EXPECT_TRUE(leader->send(protocol::kPing, {}, 10s).status.ok());
  EXPECT_TRUE(leader->transfer({P::Host, P::Disk, {{1, 2}}, std::nullopt}, 20s).status.ok());
}

TEST_F(HostileInput, ARejectionWithAMalformedReasonStillEndsTheWorkerWithStatus1) {
  const LeaderResult hello = leader->send(protocol::kHello, {}, 10s);
  ASSERT_TRUE(hello.status.ok()) << hello.status.to_string();
  const std::uint64_t nonce = protocol::decode_hello(hello.outcomes.at(0).data).nonce;
  (void)leader->send(protocol::kReject, {nlohmann::json{{"nonce", nonce}, {"reason", 12345}}.dump()}, 100ms);
  EXPECT_EQ(worker->wait_exit(20s), 1);
  EXPECT_NE(read_text(worker_log()).find("the leader rejected rank 0: (reason not a string: 12345)"), std::string::npos)
      << read_text(worker_log());
}

TEST_F(HostileInput, SigtermStopsAnIdleWorkerWithStatus0) {
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait_exit(20s), 0) << read_text(worker_log());
}

TEST_F(HostileInput, SigintStopsAnIdleWorkerWithStatus0) {
  worker->signal(SIGINT);
  EXPECT_EQ(worker->wait_exit(20s), 0) << read_text(worker_log());
}

TEST_F(HostileInput, ASignalDuringATransferAnswersItBeforeExiting) {
  BlockTransferRequest request{P::Host, P::Disk, {}, std::nullopt};
  for (std::size_t b = 0; b < 16; ++b) request.blocks.emplace_back(b, 15 - b);
  auto transfer = leader->send_async(protocol::kTransferHandler, {encode_request(request)}, 30s);
  ASSERT_TRUE(leader->send(protocol::kPing, {}, 10s).status.ok());  // read after the transfer: it has started
  worker->signal(SIGTERM);
  const LeaderResult result = transfer.get();
  EXPECT_TRUE(result.status.ok()) << result.status.to_string();
  EXPECT_EQ(worker->wait_exit(20s), 0) << read_text(worker_log());
}

// `kvbm` commands that must end with status 1 and one line of error naming `named` (other
// lines are the log's, which start with its "[time]").
void expect_one_line_error(const std::vector<std::string>& args, const std::vector<std::string>& env,
                           const std::string& log, const std::string& named) {
  SCOPED_TRACE(fmt::format("{}", fmt::join(args, " ")));
  WorkerProcess process = WorkerProcess::command(kvbm_cli(KVBM_CLI_PATH), args, log, env);
  EXPECT_EQ(process.wait_exit(30s), 1);
  const std::string text = read_text(log);
  EXPECT_NE(text.find(named), std::string::npos) << text;
  EXPECT_EQ(text.find("terminate called"), std::string::npos) << text;
  std::istringstream lines(text);
  int errors = 0;
  for (std::string line; std::getline(lines, line);) errors += line.rfind("kvbm", 0) == 0;
  EXPECT_EQ(errors, 1) << text;
}

TEST(HostileCommandLine, BadLeaderEndpointsAreOneLineErrors) {
  TempDir dir;
  const std::string long_ipc = "ipc://" + dir.path() + "/" + std::string(200, 'p');
  for (const std::string& leader : {std::string("foo"), std::string("tcp://127.0.0.1"), long_ipc}) {
    expect_one_line_error({"worker", "--leader", leader, "--rank", "0", "--world-size", "1"}, {}, dir.path() + "/log",
                          printable(leader).substr(0, 60));
  }
}

TEST(HostileCommandLine, AWorkerWhoseLeaderNeverAnswersGivesUp) {
  TempDir dir;
  const std::string nobody = "ipc://" + dir.path() + "/nobody";  // no other test can be listening there
  expect_one_line_error({"worker", "--leader", nobody, "--rank", "0", "--world-size", "1", "--leader-wait-ms", "300"}, {},
                        dir.path() + "/log", "no word from the leader at " + nobody + " within 300 ms");
  expect_one_line_error({"worker", "--leader", "tcp://no-such-host.invalid:5555", "--rank", "0", "--world-size", "1",
                         "--leader-wait-ms", "300"},
                        {}, dir.path() + "/log", "no-such-host.invalid");
  expect_one_line_error({"worker", "--leader", "tcp://256.1.1.1:5000", "--rank", "0", "--world-size", "1"}, {},
                        dir.path() + "/log", "'256.1.1.1' is not an IPv4 address");
}

TEST(HostileCommandLine, ABadLogLevelIsRefusedByEveryCommand) {
  TempDir dir;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"info"}, {"plan", "system", "disk"},
        {"bench", "--pairs", "system:system", "--sizes", "4K", "--bytes", "4K", "--repeat", "1"}}) {
    expect_one_line_error(args, {"KVBM_LOG=loud"}, dir.path() + "/log", "KVBM_LOG='loud' is not one of trace, debug");
  }
}

TEST(HostileCommandLine, BenchVerifiesDiskPairsAtBlockSizesBelowTheDiskAlignment) {
  TempDir dir;
  const std::string log = dir.path() + "/log";
  for (const auto& [sizes, bytes] : {std::pair{"3K,5000", "64K"}, std::pair{"1", "300"}}) {
    WorkerProcess bench = WorkerProcess::command(kvbm_cli(KVBM_CLI_PATH),
                                                 {"bench", "--pairs", "system:disk,disk:system,disk:disk", "--sizes",
                                                  sizes, "--bytes", bytes, "--repeat", "2", "--dir", dir.path()},
                                                 log);
    EXPECT_EQ(bench.wait_exit(120s), 0) << read_text(log);
    EXPECT_EQ(read_text(log).find(" NO "), std::string::npos) << read_text(log);
  }
}

// disk -> disk shows the random-I/O ceiling too, as the other disk pairs do: the same blocks
// read from the source, then written to the destination, each at its best queue depth.
TEST(HostileCommandLine, BenchGivesDiskToDiskARandomIoCeiling) {
  TempDir dir;
  const std::string log = dir.path() + "/log";
  WorkerProcess bench = WorkerProcess::command(
      kvbm_cli(KVBM_CLI_PATH),
      {"bench", "--pairs", "disk:disk", "--sizes", "4K", "--bytes", "64K", "--repeat", "1", "--json", "--dir", dir.path()},
      log);
  ASSERT_EQ(bench.wait_exit(120s), 0) << read_text(log);
  const std::string out = read_text(log);
  EXPECT_NE(out.find("\"random_ceiling_gbps\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"random_ceiling_write_queue_depth\""), std::string::npos) << out;
}

}  // namespace
}  // namespace kvbm::testing
