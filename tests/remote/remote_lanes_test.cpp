// Transfers cut across lanes (RemoteAgentOptions::lanes): two agents in one process over real
// UCX transports, lane_min_bytes at one byte so that every transfer of several operations is
// cut. Every layout form, both directions, random bytes into poisoned destinations; a write's
// notification once, after the bytes of every part; a peer that is gone fails every part and
// the agent goes on serving the peers it has.
#include <gtest/gtest.h>

#include "kvbm/common/error.hpp"
#include "kvbm/remote/remote_agent.hpp"
#include "support/roundtrip.hpp"

namespace kvbm {
namespace {

const LayoutConfig kShape{.num_blocks = 40, .num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 37,
                          .dtype_bytes = 2};

// An agent of `lanes` lanes that cuts every transfer of several operations, named apart from
// every other agent of the run.
RemoteAgentOptions cut_everything(const std::string& transports, std::size_t lanes) {
  static int agents = 0;
  return {.name = "lanes-" + std::to_string(agents++), .transports = transports, .lanes = lanes, .lane_min_bytes = 1,
          .transfer_timeout = std::chrono::milliseconds(3000)};
}

TEST(RemoteLanes, TransfersCutAcrossLanesMoveEveryByteInEveryForm) {
  for (const std::string transports : {"tcp", "sm"}) {
    for (const testing::LayoutChoice& choice : testing::all_layout_choices()) {
      if (choice.host_offset != 0) continue;
      SCOPED_TRACE(transports + " " + choice.name());
      RemoteAgent local(cut_everything(transports, 3));
      RemoteAgent peer(cut_everything(transports, 1));
      const auto [theirs, id] = peer.allocate_exported(kShape, choice.form, choice.order);
      const auto mine = Layout::allocate(kShape, StorageKind::system(), choice.form, choice.order);
      const std::string name = local.import_peer(peer.metadata());
      // 17 blocks: parts of uneven length, and more parts than lanes would need.
      EXPECT_EQ(testing::check_roundtrip_with(
                    [&](std::span<const BlockPair> pairs) { return local.write(mine, name, id, pairs); }, mine, theirs,
                    17, 41),
                "");
      EXPECT_EQ(testing::check_roundtrip_with(
                    [&, id = id](std::span<const BlockPair> pairs) { return local.read(name, id, mine, pairs); }, theirs,
                    mine, 17, 42),
                "");
    }
  }
}

TEST(RemoteLanes, ANotificationComesOnceAfterTheBytesOfEveryPart) {
  RemoteAgent local(cut_everything("tcp", 4));
  RemoteAgent peer(cut_everything("tcp", 1));
  const auto [theirs, id] = peer.allocate_exported(kShape, LayoutForm::FullyContiguous);
  const auto mine = Layout::allocate(kShape, StorageKind::system(), LayoutForm::LayerSeparate);
  const std::string name = local.import_peer(peer.metadata());
  std::vector<std::size_t> blocks(kShape.num_blocks);
  for (std::size_t b = 0; b < blocks.size(); ++b) blocks[b] = b;
  std::mt19937_64 rng(9);
  const auto written = testing::fill_random(*mine, blocks, rng);
  testing::poison(*theirs, std::byte{0xee});
  std::vector<BlockPair> pairs;
  for (std::size_t b = 0; b < kShape.num_blocks; ++b) pairs.emplace_back(b, kShape.num_blocks - 1 - b);
  auto handle = local.write(mine, name, id, pairs, "all 40 blocks");
  const auto notification = peer.wait_notification(std::chrono::seconds(30));
  ASSERT_TRUE(notification.has_value());
  EXPECT_EQ(notification->message, "all 40 blocks");
  // On hearing it, the peer finds every block of every part in its memory.
  for (const auto& [from, to] : pairs) {
    for (std::size_t layer = 0; layer < kShape.num_layers; ++layer) {
      for (std::size_t outer = 0; outer < kShape.outer_dim; ++outer) {
        ASSERT_EQ(testing::read_chunk(*theirs, to, layer, outer), written[from][layer * kShape.outer_dim + outer])
            << "block " << from << " -> " << to;
      }
    }
  }
  EXPECT_TRUE(handle.wait().ok());
  EXPECT_FALSE(peer.wait_notification(std::chrono::milliseconds(0)).has_value());
}

// A peer that is gone: its connection reports the failure on every lane that has one, every
// part is answered and the transfer fails once, naming it; a peer still there is served as
// before. Over tcp only: over shared memory a peer in this process is reached by copies into
// this process's own memory, which outlive it (remote_process_test kills a peer process over both).
TEST(RemoteLanes, APeerThatIsGoneFailsEveryPartAndTheOthersAreStillServed) {
  for (const std::string transports : {"tcp"}) {
    SCOPED_TRACE(transports);
    RemoteAgent local(cut_everything(transports, 3));
    auto doomed = std::make_unique<RemoteAgent>(cut_everything(transports, 1));
    RemoteAgent survivor(cut_everything(transports, 1));
    const auto [gone_layout, gone_id] = doomed->allocate_exported(kShape, LayoutForm::FullyContiguous);
    const auto [kept_layout, kept_id] = survivor.allocate_exported(kShape, LayoutForm::FullyContiguous);
    const auto mine = Layout::allocate(kShape, StorageKind::system(), LayoutForm::FullyContiguous);
    const std::string gone = local.import_peer(doomed->metadata());
    const std::string kept = local.import_peer(survivor.metadata());
    // Every lane has a link to the doomed peer before it goes.
    EXPECT_EQ(testing::check_roundtrip_with(
                  [&, id = gone_id](std::span<const BlockPair> pairs) { return local.write(mine, gone, id, pairs); },
                  mine, gone_layout, 12, 61),
              "");
    doomed.reset();
    std::vector<BlockPair> pairs;
    for (std::size_t b = 0; b < 12; ++b) pairs.emplace_back(b, b);
    for (int attempt = 0; attempt < 2; ++attempt) {
      const Status status = local.write(mine, gone, gone_id, pairs, "never heard").wait();
      ASSERT_FALSE(status.ok()) << "attempt " << attempt;
      EXPECT_NE(status.error().message().find(gone), std::string::npos) << status.to_string();
    }
    EXPECT_EQ(testing::check_roundtrip_with(
                  [&, id = kept_id](std::span<const BlockPair> pairs) { return local.write(mine, kept, id, pairs); },
                  mine, kept_layout, 12, 62),
              "");
  }
}

TEST(RemoteLanes, LaneCountsOutsideOneToSixteenAreRefused) {
  for (std::size_t lanes : {std::size_t{0}, std::size_t{17}}) {
    try {
      RemoteAgent agent(cut_everything("tcp", lanes));
      ADD_FAILURE() << lanes << " lanes were taken";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(error.message().find("lanes=" + std::to_string(lanes)), std::string::npos) << error.what();
    }
  }
}

}  // namespace
}  // namespace kvbm
