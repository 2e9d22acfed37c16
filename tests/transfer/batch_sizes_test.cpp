// How transfers are cut into batches: the kernel path starts with a batch whose descriptors fit
// in the launch, the copy-engine path takes whole batches, host paths use the configured size.
#include "transfer/engine/batch_sizes.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "transfer/backends/cuda/copy_limits.hpp"
#include "transfer/backends/cuda/cuda_batching.hpp"
#include "support/roundtrip.hpp"

namespace kvbm {
namespace {

LayoutPtr system_layout(std::size_t layers, std::size_t outer, std::size_t chunk_bytes) {
  const LayoutConfig config{.num_blocks = 4, .num_layers = layers, .outer_dim = outer, .page_size = 1,
                            .inner_dim = chunk_bytes, .dtype_bytes = 1};
  return Layout::allocate(config, StorageKind::system(), LayoutForm::LayerSeparate);
}

std::size_t total(const std::vector<std::size_t>& sizes) { return std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}); }

const TransferPlan kKernelH2D = DirectPlan{TransferStrategy::CudaAsyncH2D};

// Batches of a transfer between two host layouts of `layout`'s shape.
std::vector<std::size_t> host_batches(const TransferConfig& config, const TransferPlan& plan, const LayoutPtr& layout,
                                      std::size_t blocks) {
  return batch_sizes(config, plan, *layout, *layout, blocks);
}

}  // namespace

TEST(BatchSizes, KernelPathStartsWithWhatFitsInTheLaunch) {
  TransferConfig config;
  config.cuda.copy_path = CudaCopyPath::Kernel;
  config.cuda.batch_bytes = 64u << 20;
  // One 4 KiB chunk per block: one descriptor each.
  auto sizes = host_batches(config, kKernelH2D, system_layout(1, 1, 4096), 65536);
  ASSERT_GE(sizes.size(), 3u);
  EXPECT_EQ(sizes[0], cuda::kMaxInlineDescriptors);
  EXPECT_EQ(sizes[1], 2 * cuda::kMaxInlineDescriptors);
  EXPECT_EQ(total(sizes), 65536u);
  for (std::size_t size : sizes) EXPECT_LE(size, (64u << 20) / 4096);
  // 32 layers x K/V of 16 KiB: 64 descriptors a block, two blocks inline.
  sizes = host_batches(config, kKernelH2D, system_layout(32, 2, 16384), 1000);
  EXPECT_EQ(sizes[0], cuda::kMaxInlineDescriptors / 64);
  EXPECT_EQ(total(sizes), 1000u);
  // A 256 KiB chunk takes four descriptors; 48 layers x K/V of them: more than fit, still one block.
  sizes = host_batches(config, kKernelH2D, system_layout(48, 2, 256 << 10), 10);
  EXPECT_EQ(sizes[0], 1u);
  EXPECT_EQ(total(sizes), 10u);
}

TEST(BatchSizes, ConfiguredFirstBatchBelowTheInlineLimitIsKept) {
  TransferConfig config;
  config.cuda.copy_path = CudaCopyPath::Kernel;
  config.max_transfer_batch_size = 16;
  auto sizes = host_batches(config, kKernelH2D, system_layout(1, 1, 4096), 100);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{16, 32, 52}));
}

TEST(BatchSizes, CopyEnginePathTakesWholeBatches) {
  TransferConfig config;
  config.cuda.copy_path = CudaCopyPath::CopyEngine;
  config.cuda.batch_bytes = 1u << 20;
  auto sizes = host_batches(config, kKernelH2D, system_layout(1, 1, 4096), 1000);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{256, 256, 256, 232}));
}

TEST(BatchSizes, HostPathsUseTheConfiguredSize) {
  TransferConfig config;
  config.max_transfer_batch_size = 100;
  auto sizes = host_batches(config, DirectPlan{TransferStrategy::Memcpy}, system_layout(1, 1, 4096), 250);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{100, 100, 50}));
}

// Auto: a layout whose chunks reach the threshold is batched as the copy engine wants, one
// with smaller chunks as the kernel does.
TEST(BatchSizes, AutoPathBatchesByChunkSize) {
  TransferConfig config;
  config.cuda.copy_path = CudaCopyPath::Auto;
  config.cuda.batch_bytes = 4u << 20;
  auto sizes = host_batches(config, kKernelH2D, system_layout(1, 1, 4096), 1000);
  EXPECT_EQ(sizes[0], cuda::kMaxInlineDescriptors);
  // 256 KiB chunks: the kernel would start with 40 blocks (four descriptors each, 160 inline).
  sizes = host_batches(config, kKernelH2D, system_layout(1, 1, 256 << 10), 1000);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{256, 256, 256, 232}));
  EXPECT_EQ(resolve_copy_path(config.cuda, 4096, false), CudaCopyPath::Kernel);
  EXPECT_EQ(resolve_copy_path(config.cuda, 256 << 10, false), CudaCopyPath::CopyEngine);
  config.cuda.auto_copy_engine_bytes = 4096;
  EXPECT_EQ(resolve_copy_path(config.cuda, 4096, false), CudaCopyPath::CopyEngine);
  EXPECT_EQ(resolve_copy_path(config.cuda, 4095, false), CudaCopyPath::Kernel);
}

// Within device memory, Auto takes the kernel at every size (the copy engines are PCIe's);
// a path set explicitly is kept.
TEST(BatchSizes, AutoPathKeepsDeviceToDeviceCopiesOnTheKernel) {
  TransferConfig config;
  config.cuda.copy_path = CudaCopyPath::Auto;
  for (std::size_t bytes : {std::size_t{4096}, std::size_t{256} << 10, std::size_t{2} << 20}) {
    EXPECT_EQ(resolve_copy_path(config.cuda, bytes, true), CudaCopyPath::Kernel) << bytes;
  }
  config.cuda.copy_path = CudaCopyPath::CopyEngine;
  EXPECT_EQ(resolve_copy_path(config.cuda, 4096, true), CudaCopyPath::CopyEngine);
}

// A short launch shares each descriptor among warps until every warp of the launch has a part,
// no part smaller than one warp's 4 KiB step.
TEST(InlineSplit, GivesEveryWarpAPartOfAtLeastFourKiB) {
  EXPECT_EQ(cuda::inline_split(16, 16 * 65536, 256), 16u);   // 16 x 64 KiB on 8 CTAs: 256 parts of 4 KiB
  EXPECT_EQ(cuda::inline_split(160, 160 * 65536, 256), 1u);  // more descriptors than half the warps
  EXPECT_EQ(cuda::inline_split(2, 2 * 65536, 4224), 16u);    // capped by the 4 KiB parts
  EXPECT_EQ(cuda::inline_split(7, 7 * 1000, 256), 1u);       // chunks below one step are not cut
  EXPECT_EQ(cuda::inline_split(3, 3 * 100003, 256), 24u);
  EXPECT_EQ(cuda::inline_split(0, 0, 256), 1u);
}

TEST(BatchSizes, DiskTransfersGrowToLargeBatchesKeptInFileOrder) {
  TransferConfig config;
  config.max_transfer_batch_size = 256;
  testing::TempDir dir;
  const LayoutConfig shape{.num_blocks = 4, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 4096,
                           .dtype_bytes = 1};
  const auto disk = Layout::allocate(shape, StorageKind::disk(0), LayoutForm::FullyContiguous, LayerOrder::BlockContiguous,
                                     DiskFileOptions{.directory = dir.path()});
  const auto host = system_layout(1, 1, 4096);
  const TransferPlan write = DirectPlan{TransferStrategy::NixlWrite};
  for (const auto& [src, dst] : {std::pair{host, disk}, std::pair{disk, host}}) {
    const auto sizes = batch_sizes(config, write, *src, *dst, 300000);
    EXPECT_EQ(total(sizes), 300000U);
    EXPECT_EQ(sizes.front(), 256U);  // the first I/O starts as soon as a small batch is sorted
    EXPECT_EQ(sizes[1], 512U);
    EXPECT_EQ(*std::max_element(sizes.begin(), sizes.end()), kLargestDiskBatch);
  }
  // A batch size configured above the disk's largest is kept.
  config.max_transfer_batch_size = 100000;
  EXPECT_EQ(batch_sizes(config, write, *host, *disk, 300000).front(), 100000U);
}

}  // namespace kvbm
