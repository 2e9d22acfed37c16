// The environment module: the one place variables are read. It maps them onto options with the
// options' own defaults, names a malformed variable, and lists what it reads; and nothing the
// library builds from options looks at the environment at all.
#include "kvbm/config/environment.hpp"
#include "kvbm/manager/block_manager.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "kvbm/common/log.hpp"
#include "support/roundtrip.hpp"
#include "test_env.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;

void expect_named(const std::function<void()>& read, const std::string& text) {
  try {
    read();
    ADD_FAILURE() << "accepted: " << text;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(error.message().find(text), std::string::npos) << error.what();
  }
}

TEST(Environment, VariablesSetOptionsAndUnsetOnesKeepTheDefaults) {
  std::vector<std::unique_ptr<ScopedEnv>> unset;  // whatever the shell running the test has set
  for (const auto& setting : environment::describe()) unset.push_back(std::make_unique<ScopedEnv>(setting.name.c_str(), nullptr));
  for (const auto& setting : environment::describe()) ASSERT_FALSE(setting.from_environment) << setting.name;
  const TransferConfig defaults;
  EXPECT_EQ(environment::transfer_config().max_transfer_batch_size, defaults.max_transfer_batch_size);
  ScopedEnv batch("DYN_KVBM_MAX_TRANSFER_BATCH_SIZE", "8");
  ScopedEnv path("KVBM_CUDA_COPY_PATH", "copy_engine");
  ScopedEnv concurrent("DYN_KVBM_MAX_CONCURRENT_TRANSFERS", "3");
  ScopedEnv latency("KVBM_LATENCY", "low_cpu");
  EXPECT_EQ(environment::transfer_config().max_transfer_batch_size, 8u);
  EXPECT_EQ(environment::transfer_config().cuda.copy_path, CudaCopyPath::CopyEngine);
  EXPECT_EQ(environment::transfer_config().latency, LatencyPolicy::LowCpu);
  const WorkerOptions worker = environment::worker_options({.leader_endpoint = "ipc:///x", .rank = 1, .world_size = 2});
  EXPECT_EQ(worker.concurrent_transfers, 3u);
  EXPECT_EQ(worker.latency, LatencyPolicy::LowCpu);
  EXPECT_EQ(worker.rank, 1);  // what the caller gave stays
  EXPECT_EQ(environment::leader_options({}).latency, LatencyPolicy::LowCpu);
  const auto settings = environment::describe();
  const auto find = [&](const std::string& name) {
    return *std::find_if(settings.begin(), settings.end(), [&](const auto& s) { return s.name == name; });
  };
  EXPECT_EQ(find("DYN_KVBM_MAX_TRANSFER_BATCH_SIZE").value, "8");
  EXPECT_TRUE(find("DYN_KVBM_MAX_TRANSFER_BATCH_SIZE").from_environment);
  EXPECT_EQ(find("KVBM_DISK_QUEUE_DEPTH").value, std::to_string(defaults.disk.queue_depth));
  EXPECT_FALSE(find("KVBM_DISK_QUEUE_DEPTH").from_environment);
  for (const auto& setting : settings) {
    EXPECT_EQ(std::count_if(settings.begin(), settings.end(), [&](const auto& s) { return s.name == setting.name; }), 1)
        << setting.name << " is listed more than once";
  }
}

TEST(Environment, AMalformedVariableIsNamedWithItsValue) {
  for (const char* bad : {"0", "eight", "-1"}) {
    ScopedEnv env("DYN_KVBM_MAX_TRANSFER_BATCH_SIZE", bad);
    expect_named([] { (void)environment::transfer_config(); }, std::string("DYN_KVBM_MAX_TRANSFER_BATCH_SIZE='") + bad + "'");
  }
  {
    ScopedEnv env("KVBM_CUDA_COPY_PATH", "warp");
    expect_named([] { (void)environment::transfer_config(); }, "KVBM_CUDA_COPY_PATH='warp' is not one of kernel, copy_engine");
  }
  {
    ScopedEnv env("KVBM_LOG", "loud");
    expect_named([] { (void)environment::log_level(); }, "KVBM_LOG='loud'");
  }
  expect_named([] { set_log_level("loud"); }, "'loud' is not a log level");
}

// Every variable set to garbage: whatever the library builds from options works as if unset.
TEST(Environment, ComponentsBuiltFromOptionsIgnoreAHostileEnvironment) {
  std::vector<std::unique_ptr<ScopedEnv>> hostile;
  for (const auto& setting : environment::describe()) {
    hostile.push_back(std::make_unique<ScopedEnv>(setting.name.c_str(), "garbage\xff"));
  }
  EXPECT_THROW((void)environment::transfer_config(), Error);  // the environment really is hostile
  TempDir dir;
  const LayoutConfig config{.num_blocks = 16, .num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 64,
                            .dtype_bytes = 1};
  auto context = std::make_shared<TransferContext>();
  const LayoutPtr host = make_layout(config, StorageKind::system(), {}, dir.path());
  const LayoutPtr disk = make_layout(config, StorageKind::disk(0), {}, dir.path());
  EXPECT_EQ(check_roundtrip(*context, host, disk, 5, 1), "");
  EXPECT_EQ(check_roundtrip(*context, disk, host, 5, 2), "");

  const std::string endpoint = "ipc://" + dir.path() + "/leader";
  Leader leader(LeaderOptions{.message_endpoint = endpoint, .world_size = 1});
  auto handler = std::make_shared<BlockTransferHandler>(BlockPools{nullptr, host, disk}, context,
                                                        std::make_shared<ConnectorScheduler>());
  Worker worker(WorkerOptions{.leader_endpoint = endpoint}, handler);
  Status served;
  std::thread serving([&] { served = worker.run(); });
  leader.wait_for_workers(20s);
  const LeaderResult result = leader.transfer({BlockTransferPool::Host, BlockTransferPool::Disk, {{1, 2}}, std::nullopt}, 20s);
  EXPECT_TRUE(result.status.ok()) << result.status.to_string();
  worker.stop();
  serving.join();
  EXPECT_TRUE(served.ok()) << served.to_string();

  // The block manager over the same kinds of layouts.
  BlockManager manager({nullptr, make_layout(config, StorageKind::system(), {}, dir.path()),
                        make_layout(config, StorageKind::disk(0), {}, dir.path())},
                       context);
  auto blocks = manager.allocate(2);
  const std::vector<SequenceHash> hashes = {7, 8};
  EXPECT_EQ(manager.register_blocks(blocks, hashes), 2u);
  manager.flush_offloads();
  EXPECT_TRUE(manager.pool(Tier::Disk)->contains(8));
}

}  // namespace
}  // namespace kvbm::testing
