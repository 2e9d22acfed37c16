// The progress word the GPU writes after each submission: it must move in stream order, only
// once the work queued before it has finished.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "cuda/cuda_runtime.hpp"
#include "transfer/cuda/stream_progress.hpp"

namespace kvbm::testing {
namespace {

TEST(StreamProgress, MovesOnlyAfterTheWorkQueuedBeforeIt) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  auto progress = cuda::StreamProgress::create(stream);
  ASSERT_NE(progress, nullptr) << "stream memory operations are expected on the GPU machine's driver";

  // A host function holds the stream until the test lets it go.
  std::promise<void> release;
  auto released = release.get_future().share();
  auto hold = new std::shared_future<void>(released);
  ASSERT_EQ(cudaLaunchHostFunc(
                stream,
                [](void* arg) {
                  auto* future = static_cast<std::shared_future<void>*>(arg);
                  future->wait();
                  delete future;
                },
                hold),
            cudaSuccess);
  const std::uint64_t first = progress->advance(stream);
  const std::uint64_t second = progress->advance(stream);
  ASSERT_NE(first, 0u);
  EXPECT_EQ(second, first + 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(progress->reached(first)) << "the word moved while the work before it was still held";

  release.set_value();
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_TRUE(progress->reached(first));
  EXPECT_TRUE(progress->reached(second));
  EXPECT_FALSE(progress->reached(second + 1));
  progress.reset();
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace kvbm::testing
