// The kernel path cuts a transfer into batches (a kernel launch each, growing from
// max_transfer_batch_size blocks to cuda.batch_bytes): random bytes, poisoned destinations,
// unaligned chunks, thousands of batches with inline and uploaded descriptor lists, a bad pair
// in a later batch, and several threads sharing one executor; each on the default two streams
// and on one (cuda.kernel_streams), with descriptor lists uploaded and read in pinned memory
// (cuda.upload_descriptors), and with long batches sent as block pairs and as descriptor lists
// (cuda.block_kernel).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <string>

#include "platform/cuda_runtime.hpp"
#include "support/roundtrip.hpp"
#include "transfer/backends/cuda/copy_limits.hpp"
#include "transfer/engine/batch_sizes.hpp"

namespace kvbm::testing {
namespace {

// How the kernel path runs batches: on how many streams, whether lists are uploaded, and whether
// long batches go as block pairs or as a descriptor per chunk.
// Device -> device takes `upload` too (cuda.upload_device_descriptors), and ramps its batches up
// as the other directions do only where `ramp_device` says so (cuda.ramp_device_batches).
struct KernelPath {
  int streams = 2;  // the defaults across PCIe
  bool upload = true;
  bool block_pairs = true;
  bool ramp_device = false;
};

std::string describe(const KernelPath& path) {
  return fmt::format("{} stream(s), {} {}{}", path.streams, path.block_pairs ? "block pairs" : "descriptors",
                     path.upload ? "uploaded" : "read in pinned memory",
                     path.ramp_device ? ", device batches ramped" : "");
}

const KernelPath kEveryPath[] = {{2, true, true},  {1, true, true},  {2, false, true},  {1, false, true},
                                 {2, true, false}, {1, true, false}, {2, false, false}, {1, false, false}};

class GpuBatches : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
  }
  // Batches of `first` blocks growing to `largest` (a fixed size when they are equal), run as `path` says.
  static TransferContext context_with_batches(std::size_t first, std::size_t largest_bytes, KernelPath path = {}) {
    TransferConfig config = TransferConfig{};
    config.cuda.copy_path = CudaCopyPath::Kernel;
    config.max_transfer_batch_size = first;
    config.cuda.batch_bytes = largest_bytes;
    config.cuda.kernel_streams = path.streams;
    config.cuda.upload_descriptors = path.upload;
    config.cuda.upload_device_descriptors = path.upload;
    config.cuda.ramp_device_batches = path.ramp_device;
    config.cuda.block_kernel = path.block_pairs;
    return TransferContext(config);
  }
  void check_bad_pair_in_a_later_batch(TransferContext& context);
  TempDir dir;
};

// 36,000 blocks of two 1000-byte chunks both ways: batches growing from 80 blocks (all the
// launch carries inline) to 64 MiB, batches of 100 blocks after the first of 80 (200
// descriptors: a list each, not inline), and of 3 (inline); some again on one stream and with
// the lists read in pinned memory.
TEST_F(GpuBatches, ThousandsOfBatchesBothWays) {
  const LayoutConfig config{.num_blocks = 72001, .num_layers = 1, .outer_dim = 2, .page_size = 1, .inner_dim = 1000,
                            .dtype_bytes = 1};
  auto host = make_layout(config, StorageKind::pinned(), {LayoutForm::FullyContiguous, LayerOrder::BlockContiguous, 3},
                          dir.path());
  auto device = make_layout(config, StorageKind::device(0), {LayoutForm::LayerSeparate, LayerOrder::OuterContiguous},
                            dir.path());
  const std::size_t block_bytes = 2 * config.inner_dim;
  struct Batching {
    std::size_t first;
    std::size_t largest;
    KernelPath path;
  };
  for (auto [first, largest, path] :
       {Batching{256, 64u << 20, {}}, Batching{100, 100 * block_bytes, {}}, Batching{3, 3 * block_bytes, {}},
        Batching{256, 64u << 20, {1, true}}, Batching{3, 3 * block_bytes, {1, true}},
        Batching{256, 64u << 20, {1, false}}, Batching{100, 100 * block_bytes, {2, false}},
        Batching{256, 64u << 20, {2, true, false}}, Batching{100, 100 * block_bytes, {1, false, false}}}) {
    SCOPED_TRACE(fmt::format("batches from {} blocks, {}", first, describe(path)));
    auto context = context_with_batches(first, largest, path);
    EXPECT_EQ(check_roundtrip(context, host, device, 36000, first), "");
    EXPECT_EQ(check_roundtrip(context, device, host, 36000, first + 1), "");
  }
}

// A bad pair in a later batch: the error names it, the batches before it are copied, and
// nothing from its batch on is.
TEST_F(GpuBatches, BadPairInALaterBatchStopsTheBatchesFromIt) {
  for (const KernelPath& path : kEveryPath) {
    SCOPED_TRACE(describe(path));
    auto context = context_with_batches(4, 64u << 20, path);  // batches [0, 4), [4, 12), [12, 20)
    check_bad_pair_in_a_later_batch(context);
  }
}

void GpuBatches::check_bad_pair_in_a_later_batch(TransferContext& context) {
  const LayoutConfig config{.num_blocks = 64, .num_layers = 4, .outer_dim = 2, .page_size = 1, .inner_dim = 4096,
                            .dtype_bytes = 1};
  auto host = make_layout(config, StorageKind::pinned(), {}, dir.path());
  auto device = make_layout(config, StorageKind::device(0), {}, dir.path());
  std::mt19937_64 rng(5);
  std::vector<std::size_t> all(64);
  std::iota(all.begin(), all.end(), 0);
  const auto contents = fill_random(*host, all, rng);
  poison(*device, std::byte{0x5a});
  const Bytes poisoned(config.inner_dim, std::byte{0x5a});
  std::vector<BlockPair> pairs;
  for (std::size_t b = 0; b < 20; ++b) pairs.emplace_back(b, b);
  pairs[13].first = 640;  // in the third batch
  const Status status = context.transfer(host, device, pairs).wait();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::OutOfRange) << status.to_string();
  EXPECT_NE(status.error().message().find("source block index 640 (pair 13)"), std::string::npos) << status.to_string();
  for (std::size_t b = 0; b < 12; ++b) EXPECT_EQ(read_chunk(*device, b, 3, 1), contents[b][7]) << "block " << b;
  for (std::size_t b = 12; b < 20; ++b) EXPECT_EQ(read_chunk(*device, b, 0, 0), poisoned) << "block " << b;
  // A destination named again in a later batch.
  pairs.clear();
  for (std::size_t b = 0; b < 20; ++b) pairs.emplace_back(b, 20 + b);
  pairs[17].second = 21;
  const Status twice = context.transfer(host, device, pairs).wait();
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message().find("destination block 21 is named twice (pairs 1 and 17)"), std::string::npos)
      << twice.to_string();
  EXPECT_EQ(check_roundtrip(context, host, device, 30, 6), "");
}

// Within device memory the GPU copies a batch faster than the CPU queues one: batches are
// batch_bytes from the first, unless ramp_device_batches asks for the PCIe paths' ramp.
TEST_F(GpuBatches, DeviceToDeviceBatchesAreWholeFromTheFirstUnlessRamped) {
  TransferConfig config;
  config.cuda.batch_bytes = 64u << 20;
  const LayoutConfig shape{.num_blocks = 4, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 4096,
                           .dtype_bytes = 1};
  const auto device = Layout::allocate(shape, StorageKind::device(0), LayoutForm::FullyContiguous);
  const TransferPlan d2d = DirectPlan{TransferStrategy::CudaAsyncD2D};
  EXPECT_EQ(batch_sizes(config, d2d, *device, *device, 40000), (std::vector<std::size_t>{16384, 16384, 7232}));
  config.cuda.ramp_device_batches = true;
  const auto ramped = batch_sizes(config, d2d, *device, *device, 40000);
  EXPECT_EQ(ramped.front(), cuda::kMaxInlineDescriptors);
  EXPECT_EQ(std::accumulate(ramped.begin(), ramped.end(), std::size_t{0}), 40000u);
}

// Eight threads share the same two executors (one per direction), in batches of 16 to 64 blocks.
TEST_F(GpuBatches, ConcurrentTransfersThroughOneExecutor) {
  const LayoutConfig config{.num_blocks = 667, .num_layers = 3, .outer_dim = 2, .page_size = 1, .inner_dim = 4096,
                            .dtype_bytes = 1};
  for (const KernelPath& path : kEveryPath) {
    SCOPED_TRACE(describe(path));
    auto context = context_with_batches(16, 64 * 6 * 4096, path);
    for (const auto& result : concurrent_gpu_roundtrips(
             context, config, {LayoutForm::LayerSeparate, LayerOrder::BlockContiguous}, 333, dir.path())) {
      EXPECT_EQ(result, "");
    }
  }
}

// Long batches as block pairs, the kernel locating each chunk: every layout form on each side,
// both ways and device to device (one batch from the first, and ramped up), for chunks unaligned (1000 B), of one page, and of several
// 64 KiB pieces with an odd tail. Batches grow past what travels inline, so all but the first
// are block pairs; the check's scattered blocks seldom continue a run.
class GpuBlockPairs : public GpuBatches, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(GpuBlockPairs, EveryLayoutPairMovesEveryByte) {
  const std::size_t chunk = GetParam();
  const bool big = chunk > 65536;
  const LayoutConfig config{.num_blocks = big ? 81u : 401u, .num_layers = 3, .outer_dim = 2, .page_size = 1,
                            .inner_dim = chunk, .dtype_bytes = 1};
  const std::size_t moved = big ? 40 : 200;
  std::uint64_t seed = chunk;
  for (const KernelPath& path : {KernelPath{}, KernelPath{1, false, true, true}, KernelPath{2, false, true, false}}) {
    auto context = context_with_batches(256, 64u << 20, path);
    for (const LayoutChoice& host_choice : all_layout_choices()) {
      for (const LayoutChoice& device_choice : all_layout_choices()) {
        SCOPED_TRACE(fmt::format("{}, host {}, device {}", describe(path), host_choice.name(), device_choice.name()));
        auto host = make_layout(config, StorageKind::pinned(), host_choice, dir.path());
        auto device = make_layout(config, StorageKind::device(0), device_choice, dir.path());
        auto other_device = make_layout(config, StorageKind::device(0), host_choice, dir.path());
        EXPECT_EQ(check_roundtrip(context, host, device, moved, ++seed), "");
        EXPECT_EQ(check_roundtrip(context, device, host, moved, ++seed), "");
        EXPECT_EQ(check_roundtrip(context, device, other_device, moved, ++seed), "");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Chunks, GpuBlockPairs, ::testing::Values(1000, 4096, 3 * 65536 + 24));

}  // namespace
}  // namespace kvbm::testing
