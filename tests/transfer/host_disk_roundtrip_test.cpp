// Property tests: every host/disk tier pair, every layout form on each side, odd chunk sizes,
// odd block counts, poisoned destinations, every byte compared.
#include <gtest/gtest.h>

#include "support/roundtrip.hpp"

namespace kvbm::testing {
namespace {

struct Case {
  StorageKind src;
  StorageKind dst;
  std::size_t chunk_bytes;
};

void PrintTo(const Case& c, std::ostream* out) {
  *out << c.src.to_string() << " -> " << c.dst.to_string() << ", " << c.chunk_bytes << "-byte chunks";
}

class HostDiskRoundtrip : public ::testing::TestWithParam<Case> {};

TEST_P(HostDiskRoundtrip, EveryLayoutPairMovesEveryByte) {
  const Case& c = GetParam();
  TempDir dir;
  TransferContext context;
  const LayoutConfig config{.num_blocks = 31, .num_layers = 3, .outer_dim = 2, .page_size = 1,
                            .inner_dim = c.chunk_bytes, .dtype_bytes = 1};
  std::uint64_t seed = c.chunk_bytes;
  for (const LayoutChoice& src_choice : all_layout_choices()) {
    for (const LayoutChoice& dst_choice : all_layout_choices()) {
      SCOPED_TRACE(src_choice.name() + " -> " + dst_choice.name());
      auto src = make_layout(config, c.src, src_choice, dir.path());
      auto dst = make_layout(config, c.dst, dst_choice, dir.path());
      for (std::size_t blocks : {1, 7, 13}) {
        EXPECT_EQ(check_roundtrip(context, src, dst, blocks, ++seed), "") << blocks << " blocks";
      }
      // A prepared path moves the same bytes, transfer after transfer.
      const TransferPath path = context.prepare(src, dst);
      EXPECT_EQ(to_string(path.plan()), to_string(context.plan(*src, *dst)));
      for (std::size_t blocks : {1, 13, 5}) {
        EXPECT_EQ(check_roundtrip(path, blocks, ++seed), "") << blocks << " blocks, prepared path";
      }
    }
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const auto kind = [](StorageKind k) { return k.is_disk() ? std::string("disk") : std::string("system"); };
  return kind(info.param.src) + "_to_" + kind(info.param.dst) + "_" + std::to_string(info.param.chunk_bytes);
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (StorageKind src : {StorageKind::system(), StorageKind::disk(0)}) {
    for (StorageKind dst : {StorageKind::system(), StorageKind::disk(1)}) {
      for (std::size_t chunk : {std::size_t{1000}, std::size_t{4096}, std::size_t{65536 + 512}}) {
        cases.push_back({src, dst, chunk});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllPairs, HostDiskRoundtrip, ::testing::ValuesIn(all_cases()), case_name);

// The same through the pread/pwrite fallback, small batches, a tiny bounce pool (so two-hop
// slices must wait for buffers) and single-page disk I/Os.
TEST(HostDiskRoundtripSmallResources, ThreadsBackendTinyBouncePool) {
  TransferConfig config = TransferConfig{};
  config.disk.backend = "threads";
  config.disk.queue_depth = 3;
  config.disk.io_bytes = 4096;
  config.bounce_buffers = 2;
  config.bounce_buffer_bytes = 8192;
  config.max_transfer_batch_size = 2;
  TransferContext context(config);
  EXPECT_EQ(context.disk_backend_name(), "threads");
  TempDir dir;
  const LayoutConfig layout{.num_blocks = 21, .num_layers = 2, .outer_dim = 2, .page_size = 1, .inner_dim = 5000,
                            .dtype_bytes = 1};
  std::uint64_t seed = 99;
  for (StorageKind src : {StorageKind::system(), StorageKind::disk(0)}) {
    for (StorageKind dst : {StorageKind::system(), StorageKind::disk(1)}) {
      for (const LayoutChoice& choice : all_layout_choices()) {
        SCOPED_TRACE(src.to_string() + " -> " + dst.to_string() + " " + choice.name());
        auto a = make_layout(layout, src, choice, dir.path());
        auto b = make_layout(layout, dst, choice, dir.path());
        EXPECT_EQ(check_roundtrip(context, a, b, 9, ++seed), "");
      }
    }
  }
}

TEST(HostDiskRoundtripSmallResources, IoUringSmallQueueLargeMergedRuns) {
  TransferConfig config = TransferConfig{};
  config.disk.backend = "io_uring";
  config.disk.queue_depth = 2;
  config.disk.io_bytes = 8192;
  config.bounce_buffers = 3;
  config.bounce_buffer_bytes = 16384;
  TransferContext context(config);
  TempDir dir;
  // 3 x 4 KiB chunks a block in a fully contiguous layout: runs of adjacent blocks merge into
  // ops larger than one disk I/O and one bounce buffer.
  const LayoutConfig layout{.num_blocks = 40, .num_layers = 3, .outer_dim = 1, .page_size = 1, .inner_dim = 4096,
                            .dtype_bytes = 1};
  auto system = make_layout(layout, StorageKind::system(), {}, dir.path());
  auto disk_a = make_layout(layout, StorageKind::disk(0), {}, dir.path());
  auto disk_b = make_layout(layout, StorageKind::disk(1), {}, dir.path());
  std::vector<BlockPair> pairs;
  for (std::size_t b = 0; b < 40; ++b) pairs.emplace_back(b, b);
  std::mt19937_64 rng(5);
  const auto contents = fill_random(*system, [] {
    std::vector<std::size_t> all(40);
    for (std::size_t b = 0; b < 40; ++b) all[b] = b;
    return all;
  }(), rng);
  poison(*disk_a, std::byte{1});
  poison(*disk_b, std::byte{2});
  ASSERT_TRUE(context.transfer(system, disk_a, pairs).wait().ok());
  ASSERT_TRUE(context.transfer(disk_a, disk_b, pairs).wait().ok());
  for (std::size_t b = 0; b < 40; ++b) {
    for (std::size_t l = 0; l < 3; ++l) ASSERT_EQ(read_chunk(*disk_b, b, l, 0), contents[b][l]) << b << "," << l;
  }
}

}  // namespace
}  // namespace kvbm::testing
