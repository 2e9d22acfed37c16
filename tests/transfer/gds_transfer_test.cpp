// Device <-> disk with allow_gds: through cuFile when libcufile loads, else planned as the
// two-hop through pinned memory. Either way every byte moves, for every layout form on each
// side, unaligned (1000 B) to 2 MiB chunks, odd block counts, poisoned destinations.
#include <gtest/gtest.h>
#include <unistd.h>

#include "platform/cuda_runtime.hpp"
#include "support/roundtrip.hpp"

namespace kvbm::testing {
namespace {

TransferConfig gds_config() {
  TransferConfig config = TransferConfig{};
  config.capabilities.allow_gds = true;
  return config;
}

void skip_without_gpu() {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
}

class GdsTransfer : public ::testing::TestWithParam<std::size_t> {
 protected:
  void SetUp() override { skip_without_gpu(); }
};

class GdsErrors : public ::testing::Test {
 protected:
  void SetUp() override { skip_without_gpu(); }
};

TEST_P(GdsTransfer, DeviceAndDiskBothWays) {
  const std::size_t chunk = GetParam();
  TempDir dir;
  TransferContext context(gds_config());
  const bool direct = context.config().capabilities.allow_gds;
  std::cout << "[ INFO     ] " << (direct ? "libcufile loaded (a file cuFile refuses goes through the two-hop)"
                                          : "libcufile unavailable: two-hop") << '\n';
  const LayoutConfig config{.num_blocks = 9, .num_layers = chunk > (256u << 10) ? 1u : 3u, .outer_dim = 2,
                            .page_size = 1, .inner_dim = chunk, .dtype_bytes = 1};
  std::uint64_t seed = chunk;
  for (const LayoutChoice& device_choice : all_layout_choices()) {
    for (const LayoutChoice& disk_choice : all_layout_choices()) {
      if (disk_choice.host_offset != 0) continue;  // offsets apply to host layouts only
      SCOPED_TRACE(device_choice.name() + " <-> " + disk_choice.name());
      auto device = make_layout(config, StorageKind::device(0), device_choice, dir.path());
      auto disk = make_layout(config, StorageKind::disk(0), disk_choice, dir.path());
      EXPECT_EQ(to_string(context.plan(*device, *disk)), direct ? "Direct(NixlWrite)" : "TwoHop(CudaAsyncD2H -> Pinned -> NixlWrite)");
      EXPECT_EQ(to_string(context.plan(*disk, *device)),
                direct ? "Direct(NixlRead)" : "TwoHop(NixlReadFlipped -> Pinned -> CudaAsyncH2D)");
      for (std::size_t blocks : {1, 5}) {
        EXPECT_EQ(check_roundtrip(context, device, disk, blocks, ++seed), "") << blocks << " blocks to disk";
        EXPECT_EQ(check_roundtrip(context, disk, device, blocks, ++seed), "") << blocks << " blocks from disk";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ChunkSizes, GdsTransfer, ::testing::Values(1000, 4096, 65536, 2u << 20));

// A file shorter than the layout: the read fails naming cuFileRead (or the two-hop's read)
// and the file, and the context moves bytes afterwards.
TEST_F(GdsErrors, ShortFileIsAnErrorNamingIt) {
  TempDir dir;
  TransferContext context(gds_config());
  const LayoutConfig config{.num_blocks = 8, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 4096,
                            .dtype_bytes = 1};
  DiskFileOptions options;
  options.keep_path = dir.path() + "/short";
  auto disk = Layout::fully_contiguous(
      config, Region::create_disk_file(Layout::required_bytes_fully_contiguous(config, StorageKind::disk(0)), options));
  auto device = make_layout(config, StorageKind::device(0), {}, dir.path());
  ASSERT_EQ(::truncate(options.keep_path->c_str(), 4 * 4096), 0);
  const Status status = context.transfer(disk, device, std::vector<BlockPair>{{6, 0}}).wait();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message().find(*options.keep_path), std::string::npos) << status.to_string();
  EXPECT_EQ(check_roundtrip(context, device, disk, 3, 77), "");
}

}  // namespace
}  // namespace kvbm::testing
