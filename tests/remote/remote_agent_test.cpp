// Two agents in one process, connected over real UCX transports on loopback (tcp) or shared
// memory (sm): every layout form, both directions, random bytes into poisoned destinations.
#include "kvbm/remote/remote_agent.hpp"

#include <gtest/gtest.h>

#include <cctype>

#include "kvbm/common/error.hpp"
#include "remote/metadata_mac.hpp"
#include "remote/staged_transfer.hpp"
#include "support/roundtrip.hpp"

namespace kvbm {
namespace {

using testing::LayoutChoice;

const LayoutConfig kOddChunks{.num_blocks = 24, .num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 37,
                              .dtype_bytes = 2};

int next_agent = 0;
std::string unique(const std::string& base) { return base + "-" + std::to_string(next_agent++); }

struct AgentPair {
  explicit AgentPair(const std::string& transports)
      : local({.name = unique("local"), .transports = transports}),
        peer({.name = unique("peer"), .transports = transports}) {}
  RemoteAgent local;
  RemoteAgent peer;
};

// Two agents over tcp, each with a fully contiguous System layout; the peer's is exported.
struct ConnectedPair {
  AgentPair agents{"tcp"};
  LayoutPtr mine = Layout::allocate(kOddChunks, StorageKind::system(), LayoutForm::FullyContiguous);
  LayoutPtr theirs = Layout::allocate(kOddChunks, StorageKind::system(), LayoutForm::FullyContiguous);
  std::uint32_t id = agents.peer.export_layout(theirs);
};

struct Case {
  std::string transports;
  LayoutChoice choice;
  StorageKind kind;
};

class RemoteRoundtrip : public ::testing::TestWithParam<Case> {};

TEST_P(RemoteRoundtrip, WriteAndReadMoveEveryByteInEveryForm) {
  const Case& param = GetParam();
  AgentPair agents(param.transports);
  const LayoutPtr mine = testing::make_layout(kOddChunks, param.kind, param.choice, "");
  const LayoutPtr theirs = testing::make_layout(kOddChunks, StorageKind::system(), testing::all_layout_choices()[2], "");
  const std::uint32_t id = agents.peer.export_layout(theirs);
  const std::string peer = agents.local.import_peer(agents.peer.metadata());
  EXPECT_EQ(peer, agents.peer.name());

  EXPECT_EQ(testing::check_roundtrip_with(
                [&](std::span<const BlockPair> pairs) { return agents.local.write(mine, peer, id, pairs); }, mine,
                theirs, 9, 11),
            "");
  EXPECT_EQ(testing::check_roundtrip_with(
                [&](std::span<const BlockPair> pairs) { return agents.local.read(peer, id, mine, pairs); }, theirs,
                mine, 9, 12),
            "");
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const std::string transports : {"tcp", "sm"}) {
    for (const LayoutChoice& choice : testing::all_layout_choices()) {
      out.push_back({transports, choice, StorageKind::system()});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Transports, RemoteRoundtrip, ::testing::ValuesIn(cases()),
                         [](const auto& info) {
                           std::string name = info.param.transports + "_" + info.param.choice.name();
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(RemoteAgent, LargeBlocksMoveOverBothTransports) {
  const LayoutConfig large{.num_blocks = 6, .num_layers = 2, .outer_dim = 2, .page_size = 16, .inner_dim = 4096,
                           .dtype_bytes = 2};
  for (const std::string transports : {"tcp", "sm"}) {
    AgentPair agents(transports);
    const auto mine = Layout::allocate(large, StorageKind::system(), LayoutForm::LayerSeparate);
    const auto theirs = Layout::allocate(large, StorageKind::system(), LayoutForm::FullyContiguous);
    const std::uint32_t id = agents.peer.export_layout(theirs);
    const std::string peer = agents.local.import_peer(agents.peer.metadata());
    EXPECT_EQ(testing::check_roundtrip_with(
                  [&](std::span<const BlockPair> pairs) { return agents.local.write(mine, peer, id, pairs); }, mine,
                  theirs, 3, 21),
              "")
        << transports;
  }
}

TEST(RemoteAgent, LayoutsInMemoryUcxAllocatesMoveEveryByte) {
  for (const std::string transports : {"tcp", "sm"}) {
    for (const LayoutChoice& choice : testing::all_layout_choices()) {
      if (choice.host_offset != 0) continue;
      AgentPair agents(transports);
      const auto [theirs, id] = agents.peer.allocate_exported(kOddChunks, choice.form, choice.order);
      const auto mine = Layout::allocate(kOddChunks, StorageKind::system(), LayoutForm::FullyContiguous);
      const std::string peer = agents.local.import_peer(agents.peer.metadata());
      SCOPED_TRACE(transports + " " + choice.name());
      EXPECT_EQ(testing::check_roundtrip_with(
                    [&](std::span<const BlockPair> pairs) { return agents.local.write(mine, peer, id, pairs); }, mine,
                    theirs, 7, 31),
                "");
      EXPECT_EQ(testing::check_roundtrip_with(
                    [&, id = id](std::span<const BlockPair> pairs) { return agents.local.read(peer, id, mine, pairs); },
                    theirs, mine, 7, 32),
                "");
    }
  }
}

// The staging of device memory, run here on host layouts (the GPU tests run it on device ones):
// slices of three blocks through the staging layout, both directions, one notification.
TEST(RemoteAgent, StagedSlicesMoveEveryByteAndNotifyOnce) {
  AgentPair agents("tcp");
  const auto [theirs, id] = agents.peer.allocate_exported(kOddChunks, LayoutForm::LayerSeparate);
  const std::string peer = agents.local.import_peer(agents.peer.metadata());
  const std::size_t block = kOddChunks.chunk_bytes() * kOddChunks.num_layers * kOddChunks.outer_dim;
  remote::Stager stager(std::make_shared<TransferContext>(), 3 * block, StorageKind::system());
  const auto mine = Layout::allocate(kOddChunks, StorageKind::system(), LayoutForm::LayerSeparate,
                                     LayerOrder::OuterContiguous);
  const auto hop = [&, id = id](bool write) {
    return [&, id, write](const LayoutPtr& staging, std::span<const BlockPair> pairs, bool last) {
      return write ? agents.local.write(staging, peer, id, pairs, last ? "last slice" : "")
                   : agents.local.read(peer, id, staging, pairs);
    };
  };
  EXPECT_EQ(testing::check_roundtrip_with(
                [&](std::span<const BlockPair> pairs) {
                  return stager.start(mine, {pairs.begin(), pairs.end()}, true, hop(true));
                },
                mine, theirs, 10, 51),
            "");
  const auto notification = agents.peer.wait_notification(std::chrono::seconds(30));
  ASSERT_TRUE(notification.has_value());
  EXPECT_EQ(notification->message, "last slice");
  EXPECT_FALSE(agents.peer.wait_notification(std::chrono::milliseconds(0)).has_value());
  EXPECT_EQ(testing::check_roundtrip_with(
                [&](std::span<const BlockPair> pairs) {
                  return stager.start(mine, {pairs.begin(), pairs.end()}, false, hop(false));
                },
                theirs, mine, 10, 52),
            "");
}

TEST(RemoteAgent, ANotificationArrivesAfterTheBytesOfItsWrite) {
  ConnectedPair connected;
  auto& [agents, mine, theirs, id] = connected;
  const std::string peer = agents.local.import_peer(agents.peer.metadata());
  std::mt19937_64 rng(5);
  const auto written = testing::fill_random(*mine, {4}, rng);
  testing::poison(*theirs, std::byte{0xee});
  EXPECT_FALSE(agents.peer.wait_notification(std::chrono::milliseconds(0)).has_value());
  const std::vector<BlockPair> pairs{{4, 7}};
  auto handle = agents.local.write(mine, peer, id, pairs, "request 7 ready");
  const auto notification = agents.peer.wait_notification(std::chrono::seconds(30));
  ASSERT_TRUE(notification.has_value());
  EXPECT_EQ(notification->peer, agents.local.name());
  EXPECT_EQ(notification->message, "request 7 ready");
  // The peer reads its own memory on hearing the notification: every byte is there.
  for (std::size_t layer = 0; layer < kOddChunks.num_layers; ++layer) {
    for (std::size_t outer = 0; outer < kOddChunks.outer_dim; ++outer) {
      EXPECT_EQ(testing::read_chunk(*theirs, 7, layer, outer), written[0][layer * kOddChunks.outer_dim + outer]);
    }
  }
  EXPECT_TRUE(handle.wait().ok());
}

Status failed_write(RemoteAgent& agent, const LayoutPtr& local, const std::string& peer, std::uint32_t id,
                    std::vector<BlockPair> pairs, std::string notification = {}) {
  return agent.write(local, peer, id, pairs, std::move(notification)).wait();
}

void expect_error(const Status& status, ErrorCode code, const std::string& text) {
  ASSERT_FALSE(status.ok()) << "expected: " << text;
  EXPECT_EQ(status.error().code(), code) << status.to_string();
  EXPECT_NE(status.error().message().find(text), std::string::npos) << status.to_string();
}

TEST(RemoteAgent, BadRequestsAreRefusedLocallyAndTheConnectionServesOn) {
  ConnectedPair connected;
  auto& [agents, mine, theirs, id] = connected;
  const std::string peer = agents.local.import_peer(agents.peer.metadata());

  expect_error(failed_write(agents.local, mine, peer, id, {{0, 24}}), ErrorCode::OutOfRange,
               "pair 0: remote block 24 is past the layout's 24 blocks");
  expect_error(failed_write(agents.local, mine, peer, id, {{1, 1}, {99, 0}}), ErrorCode::OutOfRange,
               "pair 1: local block 99");
  expect_error(failed_write(agents.local, mine, peer, id + 1, {{0, 0}}), ErrorCode::InvalidArgument,
               "exported no layout 1");
  expect_error(failed_write(agents.local, mine, "nobody", id, {{0, 0}}), ErrorCode::InvalidArgument,
               "no peer named nobody");
  expect_error(failed_write(agents.local, mine, peer, id, {{0, 0}}, std::string(kMaxNotificationBytes + 1, 'n')),
               ErrorCode::InvalidArgument, "notification of 4097 bytes");
  LayoutConfig other = kOddChunks;
  other.inner_dim = 38;
  const auto wrong_shape = Layout::allocate(other, StorageKind::system(), LayoutForm::FullyContiguous);
  expect_error(failed_write(agents.local, wrong_shape, peer, id, {{0, 0}}), ErrorCode::InvalidArgument,
               "differ in shape");
  testing::TempDir dir;
  const auto on_disk = Layout::allocate(kOddChunks, StorageKind::disk(0), LayoutForm::FullyContiguous,
                                        LayerOrder::BlockContiguous, DiskFileOptions{.directory = dir.path()});
  expect_error(failed_write(agents.local, on_disk, peer, id, {{0, 0}}), ErrorCode::Unsupported, "disk");
  EXPECT_THROW((void)agents.peer.export_layout(on_disk), Error);
  try {  // a peer would place chunks by the view's shape alone: only whole layouts are exported
    (void)agents.peer.export_layout(theirs->layers(0, 1));
    ADD_FAILURE() << "a layer view was exported";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(error.what()).find("layer view"), std::string::npos) << error.what();
  }

  // Nothing moved, and the connection still carries good requests.
  EXPECT_EQ(testing::check_roundtrip_with(
                [&](std::span<const BlockPair> pairs) { return agents.local.write(mine, peer, id, pairs); }, mine,
                theirs, 5, 3),
            "");
}

TEST(RemoteAgent, BadMetadataIsRefusedAndThePeerKnownBeforeStaysReachable) {
  ConnectedPair connected;
  auto& [agents, mine, theirs, id] = connected;
  const std::string metadata = agents.peer.metadata();
  const std::string peer = agents.local.import_peer(metadata);
  for (std::size_t cut : {std::size_t{0}, std::size_t{7}, metadata.size() / 2, metadata.size() - 1}) {
    EXPECT_THROW((void)agents.local.import_peer(metadata.substr(0, cut)), Error) << cut;
  }
  EXPECT_THROW((void)agents.local.import_peer(agents.local.metadata()), Error);  // itself
  EXPECT_THROW((RemoteAgent{{.name = "bad name"}}), Error);
  EXPECT_THROW((RemoteAgent{{.name = "x", .transports = "no-such-transport"}}), Error);
  ASSERT_EQ(agents.local.peer_layouts(peer).size(), 1u);
  EXPECT_EQ(testing::check_roundtrip_with(
                [&](std::span<const BlockPair> pairs) { return agents.local.write(mine, peer, id, pairs); }, mine,
                theirs, 4, 9),
            "");
}

// Agents sharing a metadata key take each other's signed metadata and move bytes; metadata that
// is unsigned, altered by one byte anywhere, or signed with another key is refused before it is
// decoded (its length and fields are never read, nothing reaches UCX).
TEST(RemoteAgent, MetadataIsAuthenticatedBeforeItIsRead) {
  testing::TempDir dir;
  remote::write_metadata_key(dir.path() + "/shared");
  remote::write_metadata_key(dir.path() + "/other");
  const std::string key = remote::read_metadata_key(dir.path() + "/shared");
  RemoteAgent local({.name = unique("keyed-local"), .metadata_key = key});
  RemoteAgent peer({.name = unique("keyed-peer"), .metadata_key = key});
  RemoteAgent stranger({.name = unique("stranger"), .metadata_key = remote::read_metadata_key(dir.path() + "/other")});
  RemoteAgent plain({.name = unique("plain")});
  LayoutPtr mine = Layout::allocate(kOddChunks, StorageKind::system(), LayoutForm::FullyContiguous);
  LayoutPtr theirs = Layout::allocate(kOddChunks, StorageKind::system(), LayoutForm::FullyContiguous);
  const std::uint32_t id = peer.export_layout(theirs);
  const std::string signed_metadata = peer.metadata();
  const auto refused = [&](std::string_view bytes, const std::string& text) {
    try {
      (void)local.import_peer(bytes);
      ADD_FAILURE() << "imported: " << text;
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument) << error.what();
      EXPECT_NE(error.message().find(text), std::string::npos) << error.what();
    }
  };
  refused(plain.metadata(), "is not signed");
  refused(stranger.metadata(), "failed authentication");
  for (std::size_t at : {std::size_t{3}, std::size_t{20}, signed_metadata.size() / 2, signed_metadata.size() - 1}) {
    std::string tampered = signed_metadata;
    tampered[at] = static_cast<char>(tampered[at] ^ 0x01);
    refused(tampered, at < 8 ? "is not signed" : "failed authentication");
  }
  refused(signed_metadata.substr(0, signed_metadata.size() - 1), "failed authentication");
  const std::string name = local.import_peer(signed_metadata);
  EXPECT_EQ(testing::check_roundtrip_with(
                [&](std::span<const BlockPair> pairs) { return local.write(mine, name, id, pairs); }, mine, theirs, 4, 9),
            "");
  EXPECT_THROW((void)remote::read_metadata_key(dir.path() + "/missing"), Error);
  EXPECT_THROW(remote::write_metadata_key(dir.path() + "/shared"), Error);  // never overwritten
}

TEST(RemoteAgent, PlansFollowTheSeedsRules) {
  RemoteAgent agent({.name = unique("planner")});
  EXPECT_EQ(to_string(agent.plan(StorageKind::pinned(), StorageKind::system(), true)), "Direct(NixlWrite)");
  EXPECT_EQ(to_string(agent.plan(StorageKind::system(), StorageKind::pinned(), false)), "Direct(NixlReadFlipped)");
  EXPECT_THROW((void)agent.plan(StorageKind::device(0), StorageKind::system(), true), Error);
  EXPECT_THROW((void)agent.plan(StorageKind::disk(0), StorageKind::system(), true), Error);
  // GPU RDMA needs a UCX with CUDA support (Debian's has none): device pointers must never reach
  // one without it.
  try {
    RemoteAgent rdma({.name = unique("rdma"), .capabilities = TransferCapabilities{}.with_gpu_rdma(true)});
    EXPECT_EQ(to_string(rdma.plan(StorageKind::device(0), StorageKind::system(), true)), "Direct(NixlWrite)");
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Unsupported);
    EXPECT_NE(error.message().find("cannot reach CUDA device memory"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace kvbm
