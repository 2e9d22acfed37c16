// Every GPU tier pair, on both copy paths (kernel and copy engine), every layout form on each
// side, chunks from 1000 bytes (unaligned) to 2 MiB, odd block counts, poisoned destinations.
// Short transfers share each descriptor among several warps (cuda::inline_split): 64 KiB chunks
// in aligned parts, 100,003-byte ones in unaligned parts with odd tails.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <fmt/format.h>


#include "kvbm/common/error.hpp"
#include "platform/cuda_runtime.hpp"
#include "support/roundtrip.hpp"
#include "transfer/backends/cuda/copy_kernel.hpp"

namespace kvbm::testing {
namespace {

struct GpuCase {
  StorageKind src;
  StorageKind dst;
  std::size_t chunk_bytes;
  CudaCopyPath path;
};

void PrintTo(const GpuCase& c, std::ostream* out) {
  *out << c.src.to_string() << " -> " << c.dst.to_string() << ", " << c.chunk_bytes << " B, "
       << to_string(c.path);
}

TransferConfig config_for(CudaCopyPath path) {
  TransferConfig config = TransferConfig{};
  config.cuda.copy_path = path;
  return config;
}

class GpuTransfer : public ::testing::TestWithParam<GpuCase> {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
  }
};

TEST_P(GpuTransfer, EveryLayoutPairMovesEveryByte) {
  const GpuCase& c = GetParam();
  TempDir dir;
  TransferContext context(config_for(c.path));
  const bool big = c.chunk_bytes > (256u << 10);
  const LayoutConfig config{.num_blocks = big ? 15u : 31u, .num_layers = big ? 1u : 3u, .outer_dim = 2, .page_size = 1,
                            .inner_dim = c.chunk_bytes, .dtype_bytes = 1};
  std::uint64_t seed = c.chunk_bytes * 7 + static_cast<std::uint64_t>(c.path);
  for (const LayoutChoice& src_choice : all_layout_choices()) {
    for (const LayoutChoice& dst_choice : all_layout_choices()) {
      SCOPED_TRACE(src_choice.name() + " -> " + dst_choice.name());
      auto src = make_layout(config, c.src, src_choice, dir.path());
      auto dst = make_layout(config, c.dst, dst_choice, dir.path());
      for (std::size_t blocks : {1, 7}) {
        EXPECT_EQ(check_roundtrip(context, src, dst, blocks, ++seed), "") << blocks << " blocks";
      }
    }
  }
}

std::string gpu_case_name(const ::testing::TestParamInfo<GpuCase>& info) {
  const auto name = [](StorageKind k) {
    switch (k.type()) {
      case StorageKind::Type::System: return std::string("system");
      case StorageKind::Type::Pinned: return std::string("pinned");
      case StorageKind::Type::Device: return std::string("device");
      case StorageKind::Type::Disk: return std::string("disk");
    }
    return std::string("unknown");
  };
  return name(info.param.src) + "_to_" + name(info.param.dst) + "_" + std::to_string(info.param.chunk_bytes) +
         "_" + std::string(to_string(info.param.path));
}

std::vector<GpuCase> gpu_cases() {
  const StorageKind device = StorageKind::device(0);
  const std::pair<StorageKind, StorageKind> pairs[] = {
      {StorageKind::pinned(), device}, {device, StorageKind::pinned()}, {StorageKind::system(), device},
      {device, StorageKind::system()}, {device, device},                {device, StorageKind::disk(0)},
      {StorageKind::disk(0), device}};
  std::vector<GpuCase> cases;
  // Auto with the default threshold runs 1000 B to 64 KiB chunks on the kernel and 2 MiB on
  // the copy engine, and merged runs of adjacent blocks may cross it within one transfer.
  for (CudaCopyPath path : {CudaCopyPath::Kernel, CudaCopyPath::CopyEngine, CudaCopyPath::Auto}) {
    for (const auto& [src, dst] : pairs) {
      for (std::size_t chunk : {std::size_t{1000}, std::size_t{4096}, std::size_t{65536}, std::size_t{100003},
                                std::size_t{2u << 20}}) {
        cases.push_back({src, dst, chunk, path});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllPairs, GpuTransfer, ::testing::ValuesIn(gpu_cases()), gpu_case_name);

// A layer view between pinned memory and the GPU (what vLLM's connector loads a layer at a time
// during the forward pass): only the view's layers move, on both copy paths and every form.
TEST(GpuLayerView, MovesOnlyItsLayersBetweenPinnedAndDevice) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
  TempDir dir;
  std::uint64_t seed = 11;
  for (CudaCopyPath path : {CudaCopyPath::Kernel, CudaCopyPath::CopyEngine}) {
    TransferContext context(config_for(path));
    for (std::size_t chunk : {std::size_t{1000}, std::size_t{65536}}) {
      const LayoutConfig config{.num_blocks = 29, .num_layers = 6, .outer_dim = 2, .page_size = 1,
                                .inner_dim = chunk, .dtype_bytes = 1};
      for (const LayoutChoice& host_choice : all_layout_choices()) {
        for (const LayoutChoice& device_choice : all_layout_choices()) {
          SCOPED_TRACE(std::string(to_string(path)) + " " + host_choice.name() + " <-> " + device_choice.name() +
                       ", chunk " + std::to_string(chunk));
          auto host = make_layout(config, StorageKind::pinned(), host_choice, dir.path());
          auto device = make_layout(config, StorageKind::device(0), device_choice, dir.path());
          EXPECT_EQ(check_layer_view_roundtrip(context, host, device, 4, 1, 9, ++seed, true), "");
          EXPECT_EQ(check_layer_view_roundtrip(context, device, host, 1, 2, 13, ++seed, false), "");
        }
      }
    }
  }
}

// The copy-engine path cuts a stream's share of a batch into calls of at most
// cuda.copy_engine_call_copies copies: with 5 per call, a 7-block request of 3 layers x 2 makes
// several calls per stream, on one stream and on three (device-to-host and device-to-device
// batches spread over three; host-to-device batches of small copies keep to one). Every byte
// lands; nothing else is touched.
class GpuCopyEngineCalls : public GpuTransfer {};

TEST_P(GpuCopyEngineCalls, CallsOfFewCopiesMoveEveryByte) {
  const GpuCase& c = GetParam();
  TempDir dir;
  const LayoutConfig config{.num_blocks = 31, .num_layers = 3, .outer_dim = 2, .page_size = 1, .inner_dim = c.chunk_bytes,
                            .dtype_bytes = 1};
  std::uint64_t seed = c.chunk_bytes * 11;
  for (int streams : {1, 3}) {
    TransferConfig transfer_config = config_for(CudaCopyPath::CopyEngine);
    transfer_config.cuda.copy_engine_streams = streams;
    transfer_config.cuda.copy_engine_call_copies = 5;
    TransferContext context(transfer_config);
    for (const LayoutChoice& choice : all_layout_choices()) {
      SCOPED_TRACE(choice.name() + fmt::format(", {} streams", streams));
      auto src = make_layout(config, c.src, choice, dir.path());
      auto dst = make_layout(config, c.dst, choice, dir.path());
      EXPECT_EQ(check_roundtrip(context, src, dst, 7, ++seed), "");
    }
  }
}

std::vector<GpuCase> small_copy_engine_cases() {
  std::vector<GpuCase> cases;
  for (const GpuCase& c : gpu_cases()) {
    if (c.path == CudaCopyPath::CopyEngine && c.chunk_bytes <= 4096) cases.push_back(c);
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(SmallChunks, GpuCopyEngineCalls, ::testing::ValuesIn(small_copy_engine_cases()), gpu_case_name);

class GpuTransferErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
  }
  TempDir dir;
};

TEST_F(GpuTransferErrors, OnboardAndOffloadConcurrently) {
  TransferContext context;
  const LayoutConfig config{.num_blocks = 63, .num_layers = 4, .outer_dim = 2, .page_size = 16, .inner_dim = 128,
                            .dtype_bytes = 2};
  for (const auto& result : concurrent_gpu_roundtrips(
           context, config, {LayoutForm::LayerSeparate, LayerOrder::OuterContiguous}, 31, dir.path())) {
    EXPECT_EQ(result, "");
  }
}

// A real, recoverable CUDA failure: the GPU is out of memory when the kernel path uploads its
// descriptor list (longer than what travels inline in the launch). The transfer fails naming
// the call and CUDA's error; after memory comes back, the same context moves bytes again.
TEST_F(GpuTransferErrors, OutOfDeviceMemoryIsACudaErrorAndTheContextStaysUsable) {
  TransferContext context;  // fresh: its stream-ordered pool holds no memory yet
  const LayoutConfig config{.num_blocks = 1024, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 4096,
                            .dtype_bytes = 1};
  auto host = make_layout(config, StorageKind::pinned(), {}, dir.path());
  auto device = make_layout(config, StorageKind::device(0), {}, dir.path());
  std::vector<void*> hog;
  for (std::size_t chunk : {std::size_t{1} << 30, std::size_t{64} << 20, std::size_t{1} << 20, std::size_t{4096}}) {
    void* ptr = nullptr;
    while (cudaMalloc(&ptr, chunk) == cudaSuccess) hog.push_back(ptr);
    cudaGetLastError();
  }
  std::vector<BlockPair> pairs;
  for (std::size_t b = 0; b < 2 * cuda::kMaxInlineDescriptors; ++b) pairs.emplace_back(2 * b, 2 * b + 1);
  const Status status = context.transfer(host, device, pairs).wait();
  for (void* ptr : hog) cudaFree(ptr);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::Cuda) << status.to_string();
  EXPECT_NE(status.error().message().find("out of memory"), std::string::npos) << status.to_string();
  EXPECT_EQ(check_roundtrip(context, host, device, 7, 9), "");
  EXPECT_EQ(check_roundtrip(context, device, host, 7, 10), "");
}

TEST_F(GpuTransferErrors, MissingDeviceOrdinalIsNamed) {
  const LayoutConfig config{.num_blocks = 4, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 64,
                            .dtype_bytes = 1};
  try {
    (void)make_layout(config, StorageKind::device(99), {}, dir.path());
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(error.message().find("ordinal 99"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace kvbm::testing
