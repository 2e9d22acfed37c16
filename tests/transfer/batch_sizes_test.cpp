// How transfers are cut into batches: the kernel path starts with a batch whose descriptors fit
// in the launch, the copy-engine path takes whole batches, host paths use the configured size.
#include "transfer/engine/batch_sizes.hpp"

#include <gtest/gtest.h>

#include <numeric>

#include "transfer/backends/cuda/copy_limits.hpp"
#include "transfer/backends/cuda/cuda_batching.hpp"

namespace kvbm {
namespace {

LayoutPtr system_layout(std::size_t layers, std::size_t outer, std::size_t chunk_bytes) {
  const LayoutConfig config{.num_blocks = 4, .num_layers = layers, .outer_dim = outer, .page_size = 1,
                            .inner_dim = chunk_bytes, .dtype_bytes = 1};
  return Layout::allocate(config, StorageKind::system(), LayoutForm::LayerSeparate);
}

std::size_t total(const std::vector<std::size_t>& sizes) { return std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}); }

const TransferPlan kKernelH2D = DirectPlan{TransferStrategy::CudaAsyncH2D};

}  // namespace

TEST(BatchSizes, KernelPathStartsWithWhatFitsInTheLaunch) {
  TransferConfig config;
  config.cuda.copy_path = CudaCopyPath::Kernel;
  config.cuda.batch_bytes = 64u << 20;
  // One 4 KiB chunk per block: one descriptor each.
  auto sizes = batch_sizes(config, kKernelH2D, *system_layout(1, 1, 4096), 65536);
  ASSERT_GE(sizes.size(), 3u);
  EXPECT_EQ(sizes[0], cuda::kMaxInlineDescriptors);
  EXPECT_EQ(sizes[1], 2 * cuda::kMaxInlineDescriptors);
  EXPECT_EQ(total(sizes), 65536u);
  for (std::size_t size : sizes) EXPECT_LE(size, (64u << 20) / 4096);
  // 32 layers x K/V of 16 KiB: 64 descriptors a block, two blocks inline.
  sizes = batch_sizes(config, kKernelH2D, *system_layout(32, 2, 16384), 1000);
  EXPECT_EQ(sizes[0], cuda::kMaxInlineDescriptors / 64);
  EXPECT_EQ(total(sizes), 1000u);
  // A 256 KiB chunk takes four descriptors; 48 layers x K/V of them: more than fit, still one block.
  sizes = batch_sizes(config, kKernelH2D, *system_layout(48, 2, 256 << 10), 10);
  EXPECT_EQ(sizes[0], 1u);
  EXPECT_EQ(total(sizes), 10u);
}

TEST(BatchSizes, ConfiguredFirstBatchBelowTheInlineLimitIsKept) {
  TransferConfig config;
  config.cuda.copy_path = CudaCopyPath::Kernel;
  config.max_transfer_batch_size = 16;
  auto sizes = batch_sizes(config, kKernelH2D, *system_layout(1, 1, 4096), 100);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{16, 32, 52}));
}

TEST(BatchSizes, CopyEnginePathTakesWholeBatches) {
  TransferConfig config;
  config.cuda.copy_path = CudaCopyPath::CopyEngine;
  config.cuda.batch_bytes = 1u << 20;
  auto sizes = batch_sizes(config, kKernelH2D, *system_layout(1, 1, 4096), 1000);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{256, 256, 256, 232}));
}

TEST(BatchSizes, HostPathsUseTheConfiguredSize) {
  TransferConfig config;
  config.max_transfer_batch_size = 100;
  auto sizes = batch_sizes(config, DirectPlan{TransferStrategy::Memcpy}, *system_layout(1, 1, 4096), 250);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{100, 100, 50}));
}

// Auto: a layout whose chunks reach the threshold is batched as the copy engine wants, one
// with smaller chunks as the kernel does.
TEST(BatchSizes, AutoPathBatchesByChunkSize) {
  TransferConfig config;
  config.cuda.copy_path = CudaCopyPath::Auto;
  config.cuda.batch_bytes = 4u << 20;
  auto sizes = batch_sizes(config, kKernelH2D, *system_layout(1, 1, 4096), 1000);
  EXPECT_EQ(sizes[0], cuda::kMaxInlineDescriptors);
  // 256 KiB chunks: the kernel would start with 40 blocks (four descriptors each, 160 inline).
  sizes = batch_sizes(config, kKernelH2D, *system_layout(1, 1, 256 << 10), 1000);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{256, 256, 256, 232}));
  EXPECT_EQ(resolve_copy_path(config.cuda, 4096), CudaCopyPath::Kernel);
  EXPECT_EQ(resolve_copy_path(config.cuda, 256 << 10), CudaCopyPath::CopyEngine);
  config.cuda.auto_copy_engine_bytes = 4096;
  EXPECT_EQ(resolve_copy_path(config.cuda, 4096), CudaCopyPath::CopyEngine);
  EXPECT_EQ(resolve_copy_path(config.cuda, 4095), CudaCopyPath::Kernel);
}

}  // namespace kvbm
