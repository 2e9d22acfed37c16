// Device memory on remote transfers without GPU RDMA: staged through pinned memory, every
// layout form of the device layout, both directions, over tcp and shared memory, with slices
// smaller than the transfer so that several rounds run; a notification follows the last slice.
#include <gtest/gtest.h>

#include "kvbm/remote/remote_agent.hpp"
#include "kvbm/common/error.hpp"
#include "platform/cuda_runtime.hpp"
#include "support/roundtrip.hpp"

namespace kvbm {
namespace {

const LayoutConfig kShape{.num_blocks = 20, .num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 37,
                          .dtype_bytes = 2};

class RemoteDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
  }
};

TEST_F(RemoteDevice, StagedWritesAndReadsMoveEveryByteInEveryForm) {
  auto context = std::make_shared<TransferContext>();
  const std::size_t block = kShape.chunk_bytes() * kShape.num_layers * kShape.outer_dim;
  int round = 0;
  for (const std::string transports : {"tcp", "sm"}) {
    RemoteAgent local({.name = "device-" + std::to_string(round), .transports = transports,
                       .stage_remote_device = true, .cuda = context, .staging_bytes = 3 * block});
    RemoteAgent peer({.name = "host-" + std::to_string(round++), .transports = transports});
    const auto [theirs, id] = peer.allocate_exported(kShape, LayoutForm::LayerSeparate, LayerOrder::OuterContiguous);
    const std::string name = local.import_peer(peer.metadata());
    EXPECT_EQ(to_string(local.plan(StorageKind::device(0), StorageKind::system(), true)),
              "TwoHop(CudaAsyncD2H -> Pinned -> NixlWrite)");
    for (const testing::LayoutChoice& choice : testing::all_layout_choices()) {
      if (choice.host_offset != 0) continue;
      SCOPED_TRACE(transports + " device " + choice.name());
      const LayoutPtr mine = testing::make_layout(kShape, StorageKind::device(0), choice, "");
      EXPECT_EQ(testing::check_roundtrip_with(
                    [&](std::span<const BlockPair> pairs) { return local.write(mine, name, id, pairs, "staged"); },
                    mine, theirs, 8, 41),
                "");
      const auto notification = peer.wait_notification(std::chrono::seconds(30));
      ASSERT_TRUE(notification.has_value());
      EXPECT_EQ(notification->message, "staged");
      EXPECT_FALSE(peer.wait_notification(std::chrono::milliseconds(0)).has_value()) << "one per transfer";
      EXPECT_EQ(testing::check_roundtrip_with(
                    [&, id = id](std::span<const BlockPair> pairs) { return local.read(name, id, mine, pairs); },
                    theirs, mine, 8, 42),
                "");
    }
    // A bad block fails before any slice moves.
    const LayoutPtr mine = testing::make_layout(kShape, StorageKind::device(0), testing::all_layout_choices()[0], "");
    const std::vector<BlockPair> past_end{{0, 1}, {25, 2}};
    const Status status = local.write(mine, name, id, past_end).wait();
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), ErrorCode::OutOfRange) << status.to_string();
  }
}

TEST_F(RemoteDevice, WithoutStagingDeviceMemoryIsRefused) {
  RemoteAgent local({.name = "plain"});
  EXPECT_THROW((void)local.plan(StorageKind::device(0), StorageKind::system(), true), Error);
  const auto mine = Layout::allocate(kShape, StorageKind::device(0), LayoutForm::FullyContiguous);
  EXPECT_THROW((void)local.export_layout(mine), Error);
}

}  // namespace
}  // namespace kvbm
