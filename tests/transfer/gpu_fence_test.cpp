// TransferPath::fence(): a caller's stream that waits on a fence sees every byte of the copies
// posted before it, on both copy paths and both directions through the GPU. (A path that does
// not run on CUDA streams is refused: transfer_errors_test.cpp.)
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "kvbm/common/error.hpp"
#include "kvbm/memory/region.hpp"
#include "kvbm/transfer/transfer_context.hpp"
#include "platform/cuda_runtime.hpp"
#include "support/chunk_io.hpp"

namespace kvbm::testing {
namespace {

// 64 blocks of 2 MiB: long enough that a stream that did not wait would read poison.
const LayoutConfig kConfig{.num_blocks = 64, .num_layers = 4, .outer_dim = 2, .page_size = 1,
                           .inner_dim = 256 << 10, .dtype_bytes = 1};

struct CallerStream {
  CallerStream() { EXPECT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess); }
  ~CallerStream() { cudaStreamDestroy(stream); }
  cudaStream_t stream = nullptr;
};

// Posts every block from `src` to `dst` (the destination poisoned), makes a stream of the
// test's own wait on the path's fence, and reads the destination from that stream at once:
// the read must see every source byte. "" when it does, else the first differing offset.
std::string read_after_fence(TransferContext& context, const LayoutPtr& src, const LayoutPtr& dst) {
  std::mt19937_64 rng(7);
  std::vector<std::size_t> blocks(kConfig.num_blocks);
  for (std::size_t b = 0; b < blocks.size(); ++b) blocks[b] = b;
  (void)fill_random(*src, blocks, rng);
  poison(*dst, std::byte{0xA5});
  const std::size_t bytes = src->regions().front()->size();
  const RegionPtr expected = Region::allocate_pinned(bytes);
  const RegionPtr seen = Region::allocate_pinned(bytes);
  EXPECT_EQ(cudaMemcpy(expected->data(), src->regions().front()->data(), bytes, cudaMemcpyDefault), cudaSuccess);

  const TransferPath path = context.prepare(src, dst);
  std::vector<BlockPair> pairs;
  for (std::size_t b = 0; b < blocks.size(); ++b) pairs.emplace_back(b, b);
  CallerStream caller;
  TransferHandle handle = path.post(pairs);
  path.fence().enqueue_wait(reinterpret_cast<std::uintptr_t>(caller.stream));
  EXPECT_EQ(cudaMemcpyAsync(seen->data(), dst->regions().front()->data(), bytes, cudaMemcpyDefault, caller.stream),
            cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(caller.stream), cudaSuccess);
  EXPECT_TRUE(handle.wait().ok());
  const auto mismatch = std::mismatch(expected->data(), expected->data() + bytes, seen->data());
  return mismatch.first == expected->data() + bytes ? ""
                                                     : "byte " + std::to_string(mismatch.first - expected->data()) + " differs";
}

TEST(GpuFence, ACallersStreamSeesEveryByteOfTheCopiesBeforeIt) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
  for (CudaCopyPath copy_path : {CudaCopyPath::Kernel, CudaCopyPath::CopyEngine}) {
    TransferConfig config;
    config.cuda.copy_path = copy_path;
    TransferContext context(config);
    auto pinned = Layout::allocate(kConfig, StorageKind::pinned(), LayoutForm::FullyContiguous);
    auto device = Layout::allocate(kConfig, StorageKind::device(0), LayoutForm::FullyContiguous);
    SCOPED_TRACE(to_string(copy_path));
    EXPECT_EQ(read_after_fence(context, pinned, device), "") << "pinned -> device";
    EXPECT_EQ(read_after_fence(context, device, pinned), "") << "device -> pinned";
  }
}

}  // namespace
}  // namespace kvbm::testing
