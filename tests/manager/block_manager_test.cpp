// The block manager on host and disk tiers (the GPU tests add the device tier): write-through,
// prefix lookup across tiers, onboard with every byte checked, failures that register nothing,
// bad arguments, the offload queue's bounds, and the metrics over real HTTP.
#include "kvbm/manager/block_manager.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "kvbm/manager/metrics_server.hpp"
#include "layout/chunk_io.hpp"
#include "manager/offload_queue.hpp"
#include "support/roundtrip.hpp"

namespace kvbm::testing {
namespace {

const LayoutConfig kShape{.num_blocks = 0, .num_layers = 2, .outer_dim = 2, .page_size = 3, .inner_dim = 100, .dtype_bytes = 2};

LayoutConfig with_blocks(std::size_t blocks) {
  LayoutConfig config = kShape;
  config.num_blocks = blocks;
  return config;
}

Bytes bytes_of(SequenceHash hash, std::size_t size) {
  std::mt19937_64 rng(hash);
  Bytes bytes(size);
  for (auto& b : bytes) b = static_cast<std::byte>(rng());
  return bytes;
}

class Manager : public ::testing::Test {
 protected:
  // Writes each block's bytes into top-tier blocks and registers them: a computed prefill.
  std::vector<BlockHandle> compute(BlockManager& manager, const std::vector<SequenceHash>& hashes) {
    auto blocks = manager.allocate(hashes.size());
    EXPECT_EQ(blocks.size(), hashes.size());
    const Layout& top = *manager.pool(manager.top_tier())->layout();
    for (std::size_t i = 0; i < blocks.size(); ++i) write_block(top, blocks[i].block(), bytes_of(hashes[i], block_bytes(top)));
    EXPECT_EQ(manager.register_blocks(blocks, hashes), hashes.size());
    return blocks;
  }

  TempDir dir;
  std::shared_ptr<TransferContext> context = std::make_shared<TransferContext>();
};

TEST_F(Manager, WritesThroughFindsPrefixesAcrossTiersAndOnboardsEveryByte) {
  auto host = make_layout(with_blocks(6), StorageKind::system(), {}, dir.path());
  auto disk = make_layout(with_blocks(32), StorageKind::disk(0), {}, dir.path());
  BlockManager manager({nullptr, host, disk}, context);
  EXPECT_EQ(manager.top_tier(), Tier::Host);
  const std::vector<SequenceHash> first = {11, 12, 13, 14, 15};
  (void)compute(manager, first);  // released at once: cached
  manager.flush_offloads();
  for (SequenceHash hash : first) EXPECT_TRUE(manager.pool(Tier::Disk)->contains(hash)) << hash;

  PrefixMatch match = manager.match(std::vector<SequenceHash>{11, 12, 13, 99, 14});
  EXPECT_EQ(match.size(), 3u);  // stops at the first block no tier has
  EXPECT_EQ(match.host, 3u);
  match = {};

  // Six other blocks push the first ones out of the host tier; the disk keeps them.
  (void)compute(manager, {21, 22, 23, 24, 25, 26});
  manager.flush_offloads();
  match = manager.match(first);
  EXPECT_EQ(match.size(), 5u);
  EXPECT_EQ(match.host, 0u);
  EXPECT_EQ(match.disk, 5u);
  auto destinations = manager.allocate(5);
  ASSERT_EQ(destinations.size(), 5u);
  ASSERT_TRUE(manager.onboard(match, destinations).wait().ok());
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(destinations[i].hash(), first[i]);
    EXPECT_EQ(read_block(*host, destinations[i].block()), bytes_of(first[i], block_bytes(*host))) << i;
  }
  match = {};
  destinations.clear();
  match = manager.match(first);
  EXPECT_EQ(match.host, 5u);

  const ManagerMetrics metrics = manager.metrics();
  EXPECT_EQ(metrics.onboards.at({Tier::Disk, Tier::Host}).blocks, 5u);
  EXPECT_EQ(metrics.offloads.at({Tier::Host, Tier::Disk}).blocks, 11u);
  EXPECT_EQ(metrics.disk_hits, 5u);
  EXPECT_GT(metrics.disk_cache_hit_rate(), 0.0);
  const std::string text = metrics.prometheus();
  for (const char* name : {"kvbm_matched_tokens", "kvbm_host_cache_hit_rate", "kvbm_disk_cache_hit_rate",
                           "kvbm_offload_blocks_h2d", "kvbm_tier_evictions{tier=\"host\"}"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
}

TEST_F(Manager, AFailedOnboardRegistersNothing) {
  const std::string path = dir.path() + "/disk-tier";
  auto host = make_layout(with_blocks(2), StorageKind::system(), {}, dir.path());
  auto disk = Layout::allocate(with_blocks(8), StorageKind::disk(0), LayoutForm::FullyContiguous, LayerOrder::BlockContiguous,
                               DiskFileOptions{.id = 0, .directory = std::nullopt, .keep_path = path});
  BlockManager manager({nullptr, host, disk}, context);
  (void)compute(manager, {1, 2});
  manager.flush_offloads();
  (void)compute(manager, {3, 4});  // 1 and 2 now only on disk
  manager.flush_offloads();
  ASSERT_EQ(::truncate(path.c_str(), 0), 0);  // their bytes are gone: reads come back short
  PrefixMatch match = manager.match(std::vector<SequenceHash>{1, 2});
  ASSERT_EQ(match.disk, 2u);
  auto destinations = manager.allocate(2);
  const Status status = manager.onboard(match, destinations).wait();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::Io) << status.to_string();
  for (const BlockHandle& block : destinations) EXPECT_FALSE(block.hash());
  EXPECT_FALSE(manager.pool(Tier::Host)->contains(1));
  EXPECT_FALSE(manager.pool(Tier::Host)->contains(2));
  EXPECT_EQ(manager.metrics().onboards.at({Tier::Disk, Tier::Host}).failed_blocks, 2u);
}

// With disk admission at two lookups, only blocks asked for twice go on to the disk.
TEST_F(Manager, DiskAdmissionKeepsBlocksSeenOnceOffTheDisk) {
  auto host = make_layout(with_blocks(8), StorageKind::system(), {}, dir.path());
  auto disk = make_layout(with_blocks(8), StorageKind::disk(0), {}, dir.path());
  BlockManager manager({nullptr, host, disk}, context, ManagerOptions{.disk_admission_lookups = 2});
  const std::vector<SequenceHash> twice = {1, 2};
  (void)manager.match(twice);  // asked for once before being computed, once now
  (void)manager.match(twice);
  (void)manager.match(std::vector<SequenceHash>{3});
  (void)compute(manager, {1, 2, 3});
  manager.flush_offloads();
  EXPECT_TRUE(manager.pool(Tier::Disk)->contains(1));
  EXPECT_TRUE(manager.pool(Tier::Disk)->contains(2));
  EXPECT_FALSE(manager.pool(Tier::Disk)->contains(3));
  EXPECT_EQ(manager.metrics().disk_admission_refused_blocks, 1u);
}

// A block the middle tier's policy will not admit (W-TinyLFU: estimated less popular than the
// victim) is copied from the tier above straight to the one below, bytes intact, and counted.
// The top tier here is system memory in the device slot: the rule is the manager's, not CUDA's.
TEST_F(Manager, ABlockAMiddleTierRefusesGoesOnToTheTierBelowIt) {
  auto top = make_layout(with_blocks(4), StorageKind::system(), {}, dir.path());
  auto host = make_layout(with_blocks(2), StorageKind::system(), {}, dir.path());
  auto disk = make_layout(with_blocks(16), StorageKind::disk(0), {}, dir.path());
  BlockManager manager({top, host, disk}, context, ManagerOptions{.policy = EvictionPolicyKind::TinyLfu});
  for (int i = 0; i < 6; ++i) (void)manager.match(std::vector<SequenceHash>{1, 2});  // popular before they exist
  (void)compute(manager, {1, 2});
  manager.flush_offloads();
  ASSERT_TRUE(manager.pool(Tier::Host)->contains(1));
  ASSERT_TRUE(manager.pool(Tier::Host)->contains(2));
  (void)compute(manager, {7});  // never asked for: the host keeps 1 and 2
  manager.flush_offloads();
  EXPECT_FALSE(manager.pool(Tier::Host)->contains(7));
  EXPECT_TRUE(manager.pool(Tier::Host)->contains(1));
  EXPECT_TRUE(manager.pool(Tier::Disk)->contains(7));
  EXPECT_GE(manager.metrics().policy_admission_refused_blocks, 1u);
  EXPECT_EQ(manager.metrics().offloads.at({Tier::Device, Tier::Disk}).blocks, 1u);
  // Its bytes on the disk are the block's: onboarded back into the top tier, byte for byte.
  (void)compute(manager, {30, 31, 32, 33});  // pushes 7 out of the top tier
  manager.flush_offloads();
  PrefixMatch match = manager.match(std::vector<SequenceHash>{7});
  ASSERT_EQ(match.disk, 1u);
  auto destination = manager.allocate(1);
  ASSERT_EQ(destination.size(), 1u);
  ASSERT_TRUE(manager.onboard(std::move(match), destination).wait().ok());
  const Layout& top_layout = *manager.pool(Tier::Device)->layout();
  EXPECT_EQ(read_block(top_layout, destination[0].block()), bytes_of(7, block_bytes(top_layout)));
}

// A write-through copy that fails (the filesystem under the disk tier is full) registers
// nothing below, and the block stays served from the tier above.
TEST_F(Manager, AFailedOffloadRegistersNothing) {
  const std::string mount_point = dir.path() + "/tiny";
  std::filesystem::create_directory(mount_point);
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here (" << std::strerror(errno) << "); needs root";
  }
  const std::string path = mount_point + "/disk-tier";
  {
    auto host = make_layout(with_blocks(4), StorageKind::system(), {}, dir.path());
    auto disk = Layout::allocate(with_blocks(8), StorageKind::disk(0), LayoutForm::FullyContiguous,
                                 LayerOrder::BlockContiguous, DiskFileOptions{.id = 0, .directory = std::nullopt, .keep_path = path});
    // The tier's file loses its space, and another file takes all of it: its writes now fail.
    ASSERT_EQ(::truncate(path.c_str(), 0), 0);
    {
      std::ofstream filler(mount_point + "/filler", std::ios::binary);
      const std::string chunk(4096, 'x');
      while (filler.write(chunk.data(), static_cast<std::streamsize>(chunk.size())) && filler.flush()) {
      }
    }
    BlockManager manager({nullptr, host, disk}, context);
    (void)compute(manager, {1, 2});
    manager.flush_offloads();
    EXPECT_FALSE(manager.pool(Tier::Disk)->contains(1));
    EXPECT_FALSE(manager.pool(Tier::Disk)->contains(2));
    const ManagerMetrics metrics = manager.metrics();
    EXPECT_EQ(metrics.offloads.at({Tier::Host, Tier::Disk}).failed_blocks, 2u);
    EXPECT_EQ(metrics.offloads.at({Tier::Host, Tier::Disk}).blocks, 0u);
    EXPECT_EQ(manager.match(std::vector<SequenceHash>{1, 2}).host, 2u);
  }
  EXPECT_EQ(::umount(mount_point.c_str()), 0) << std::strerror(errno);
}

TEST_F(Manager, BadArgumentsAreErrorsNamingTheProblem) {
  auto host = make_layout(with_blocks(4), StorageKind::system(), {}, dir.path());
  auto disk = make_layout(with_blocks(4), StorageKind::disk(0), {}, dir.path());
  EXPECT_THROW(BlockManager({nullptr, nullptr, disk}, context), Error);
  LayoutConfig other = with_blocks(4);
  other.inner_dim = 64;
  EXPECT_THROW(BlockManager({nullptr, host, make_layout(other, StorageKind::system(), {}, dir.path())}, context), Error);
  EXPECT_THROW(BlockManager({nullptr, host, disk}, context, ManagerOptions{.offload_queue_blocks = 0}), Error);
  BlockManager manager({nullptr, host, disk}, context);
  auto blocks = manager.allocate(2);
  const std::vector<SequenceHash> one = {5};
  EXPECT_THROW((void)manager.register_blocks(blocks, one), Error);
  (void)compute(manager, {5, 6});
  manager.flush_offloads();
  (void)compute(manager, {7, 8});
  manager.flush_offloads();
  PrefixMatch match = manager.match(std::vector<SequenceHash>{5, 6});
  ASSERT_EQ(match.disk, 2u);
  const Status too_few = manager.onboard(match, std::span(blocks).subspan(0, 1)).wait();
  ASSERT_FALSE(too_few.ok());
  EXPECT_NE(too_few.error().message().find("1 destination blocks"), std::string::npos) << too_few.to_string();
  ASSERT_TRUE(manager.register_block(blocks[0], 42));
  const Status registered = manager.onboard(match, blocks).wait();
  ASSERT_FALSE(registered.ok());
  EXPECT_NE(registered.error().message().find("not an unregistered"), std::string::npos) << registered.to_string();
}

TEST(OffloadQueue, HighestPriorityFirstBoundedSheddingTheLowest) {
  OffloadQueue queue(3);
  EXPECT_EQ(queue.push({Tier::Device, {}, 1, 0}), 0u);
  EXPECT_EQ(queue.push({Tier::Device, {}, 2, 5}), 0u);
  EXPECT_EQ(queue.push({Tier::Host, {}, 3, 5}), 0u);
  EXPECT_EQ(queue.push({Tier::Device, {}, 4, 0}), 1u);  // full, and not above the lowest: dropped
  EXPECT_EQ(queue.push({Tier::Device, {}, 5, 9}), 1u);  // displaces hash 1 (priority 0)
  auto batch = queue.take(8);
  ASSERT_EQ(batch.size(), 2u);  // 5 (priority 9), then 2 (priority 5, first come); 3 is another tier's
  EXPECT_EQ(batch[0].hash, 5u);
  EXPECT_EQ(batch[1].hash, 2u);
  EXPECT_EQ(queue.depth(), 3u);  // two running, one waiting
  queue.finished(2);
  batch = queue.take(8);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].hash, 3u);
  queue.finished(1);
  queue.wait_idle();
  EXPECT_EQ(queue.depth(), 0u);
  queue.close();
  EXPECT_TRUE(queue.take(8).empty());
}

// GET /metrics over a real loopback socket.
std::string http_get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  (void)::send(fd, request.data(), request.size(), 0);
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;) response.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  return response;
}

TEST(MetricsServer, ServesPrometheusTextOverHttp) {
  MetricsServer server(0, [] { return std::string("kvbm_matched_tokens 42\n"); });
  ASSERT_GT(server.port(), 0);
  const std::string response = http_get(server.port(), "/metrics");
  EXPECT_NE(response.find("200 OK"), std::string::npos) << response;
  EXPECT_NE(response.find("text/plain; version=0.0.4"), std::string::npos) << response;
  EXPECT_NE(response.find("kvbm_matched_tokens 42"), std::string::npos) << response;
  EXPECT_NE(http_get(server.port(), "/nothing").find("404"), std::string::npos);
  MetricsServer failing(0, []() -> std::string { throw Error(ErrorCode::Internal, "no figures"); });
  EXPECT_NE(http_get(failing.port(), "/metrics").find("500"), std::string::npos);
  EXPECT_THROW(MetricsServer(70000, [] { return std::string(); }), Error);
  EXPECT_THROW(MetricsServer(server.port(), [] { return std::string(); }), Error);  // taken
}

}  // namespace
}  // namespace kvbm::testing
