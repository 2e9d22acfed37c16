// Pinned and device regions, registration of external GPU memory, layouts in device memory.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>
#include <fmt/format.h>

#include "kvbm/common/error.hpp"
#include "kvbm/layout/layout.hpp"
#include "kvbm/memory/region.hpp"
#include "platform/cuda_runtime.hpp"

namespace kvbm {
namespace {

class GpuRegion : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
  }
};

std::vector<std::byte> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(rng());
  return out;
}

}  // namespace

TEST_F(GpuRegion, PinnedRegionIsKnownToCuda) {
  auto region = Region::allocate_pinned(12345);
  EXPECT_EQ(region->kind(), StorageKind::pinned());
  EXPECT_EQ(cuda::pointer_info(region->data()).type, cuda::PointerType::Host);
  std::memset(region->data(), 0x42, region->size());
}

TEST_F(GpuRegion, DeviceRegionRoundTripsRandomBytes) {
  const std::size_t n = (1 << 20) + 3;
  auto region = Region::allocate_device(0, n);
  EXPECT_EQ(region->kind(), StorageKind::device(0));
  EXPECT_EQ(cuda::pointer_info(region->data()).type, cuda::PointerType::Device);
  const auto input = random_bytes(n, 1);
  std::vector<std::byte> output(n, std::byte{0xee});
  ASSERT_EQ(cudaMemcpy(region->data(), input.data(), n, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(output.data(), region->data(), n, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(input, output);
}

TEST_F(GpuRegion, MissingOrdinalIsNamed) {
  const int count = cuda::device_count();
  try {
    (void)Region::allocate_device(static_cast<std::uint32_t>(count), 4096);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::OutOfRange);
    EXPECT_NE(error.message().find(fmt::format("ordinal {}", count)), std::string::npos) << error.what();
  }
}

TEST_F(GpuRegion, RegisterExternalDeviceMemory) {
  void* external = nullptr;
  ASSERT_EQ(cudaMalloc(&external, 1 << 20), cudaSuccess);
  {
    auto region = Region::register_memory(external, 1 << 20, StorageKind::device(0));
    EXPECT_FALSE(region->owned());
    EXPECT_EQ(region->data(), external);
    // Registered as the wrong kind: CUDA knows better, and the error says what was claimed.
    std::vector<std::byte> host(4096);
    EXPECT_THROW((void)Region::register_memory(host.data(), host.size(), StorageKind::device(0)), Error);
    EXPECT_THROW((void)Region::register_memory(external, 4096, StorageKind::pinned()), Error);
  }
  // The region did not free memory it does not own.
  EXPECT_EQ(cudaFree(external), cudaSuccess);
}

TEST_F(GpuRegion, PinExistingHostMemory) {
  std::vector<std::byte> host(1 << 16);
  {
    auto region = Region::register_memory(host.data(), host.size(), StorageKind::system(), true);
    EXPECT_EQ(region->kind(), StorageKind::pinned());
    EXPECT_EQ(cuda::pointer_info(host.data()).type, cuda::PointerType::Host);
  }
  // Unregistered again when the region went away.
  EXPECT_NE(cuda::pointer_info(host.data()).type, cuda::PointerType::Host);
  // Plain memory claimed to be pinned is refused, naming the pointer.
  try {
    (void)Region::register_memory(host.data(), host.size(), StorageKind::pinned());
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(error.message().find("not know it as pinned"), std::string::npos) << error.what();
  }
}

TEST_F(GpuRegion, LayoutsInDeviceMemory) {
  const LayoutConfig config{.num_blocks = 7, .num_layers = 3, .outer_dim = 2, .page_size = 16, .inner_dim = 40,
                            .dtype_bytes = 2};
  for (LayoutForm form : {LayoutForm::FullyContiguous, LayoutForm::LayerSeparate}) {
    auto layout = Layout::allocate(config, StorageKind::device(0), form, LayerOrder::OuterContiguous);
    EXPECT_EQ(layout->kind(), StorageKind::device(0));
    // Write a chunk through its address and read it back: the address is real device memory.
    const ChunkLocation chunk = layout->locate(6, 2, 1);
    const auto input = random_bytes(chunk.bytes, 7);
    std::vector<std::byte> output(chunk.bytes);
    std::byte* address = chunk.region->data() + chunk.offset;
    ASSERT_EQ(cudaMemcpy(address, input.data(), chunk.bytes, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(output.data(), address, chunk.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(input, output);
  }
  // Registered device memory smaller than the layout: named.
  void* external = nullptr;
  ASSERT_EQ(cudaMalloc(&external, 4096), cudaSuccess);
  auto small = Region::register_memory(external, 4096, StorageKind::device(0));
  EXPECT_THROW((void)Layout::fully_contiguous(config, small), Error);
  small.reset();
  cudaFree(external);
}

}  // namespace kvbm
