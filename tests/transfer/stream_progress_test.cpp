// The progress word the GPU writes after each submission: it must move in stream order, only
// once the work queued before it has finished. A signalling copy kernel writes it itself, once
// every byte it copied can be read: the host reads them without synchronizing anything.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <vector>

#include "platform/cuda_runtime.hpp"
#include "transfer/backends/cuda/copy_kernel.hpp"
#include "transfer/backends/cuda/stream_progress.hpp"

namespace kvbm::testing {
namespace {

// A stream and its progress word, let go after each test that passed. One that failed may have
// left work held on the stream (the first test's host function): it is left, not waited for.
class StreamProgress : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
    progress = cuda::StreamProgress::create(stream);
    ASSERT_NE(progress, nullptr) << "stream memory operations are expected on the GPU machine's driver";
  }
  void TearDown() override {
    if (!stream || HasFailure()) return;
    cudaStreamSynchronize(stream);
    progress.reset();
    cudaStreamDestroy(stream);
  }

  cudaStream_t stream = nullptr;
  std::unique_ptr<cuda::StreamProgress> progress;
};

TEST_F(StreamProgress, MovesOnlyAfterTheWorkQueuedBeforeIt) {
  // A host function holds the stream until the test lets it go, and says when it has begun: from
  // then on the GPU has taken up the stream, and only this hold stands before the words.
  struct Hold {
    std::promise<void> begun;
    std::shared_future<void> release;
  };
  std::promise<void> release;
  auto hold = new Hold{{}, release.get_future().share()};
  auto begun = hold->begun.get_future();
  ASSERT_EQ(cudaLaunchHostFunc(
                stream,
                [](void* arg) {
                  auto* held = static_cast<Hold*>(arg);
                  held->begun.set_value();
                  held->release.wait();
                  delete held;
                },
                hold),
            cudaSuccess);
  const std::uint64_t first = progress->advance(stream);
  const std::uint64_t second = progress->advance(stream);
  EXPECT_NE(first, 0u);
  EXPECT_EQ(second, first + 1);
  const bool held = begun.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  EXPECT_TRUE(held) << "the stream never ran the hold";
  // The words are queued behind the hold, which is running: neither may have moved. (No other
  // device work here: compute-sanitizer runs the device's work one piece at a time, so work on
  // another stream would wait for the hold.)
  EXPECT_FALSE(progress->reached(first)) << "the word moved while the work before it was still held";

  release.set_value();
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_TRUE(progress->reached(first));
  EXPECT_TRUE(progress->reached(second));
  EXPECT_FALSE(progress->reached(second + 1));
}

// Polls for `number` for up to 5 s (a kernel that never signals fails the test, not hangs it).
bool wait_for_word(const cuda::StreamProgress& progress, std::uint64_t number) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!progress.reached(number)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
  }
  return true;
}

// Pinned -> device -> pinned through signalling kernels of 1 to 5 CTAs, 1000-byte pieces at odd
// offsets, many launches in a row (the last CTA must leave the count at zero for the next). The
// destination is poisoned first and read as soon as the word says so.
TEST_F(StreamProgress, SignallingKernelsWriteTheWordOnceTheirBytesAreVisible) {
  constexpr std::size_t kPiece = 1000, kPieces = cuda::kMaxInlineDescriptors, kBytes = kPieces * kPiece + 64;
  auto* source = static_cast<unsigned char*>(cuda::host_alloc(kBytes));
  auto* back = static_cast<unsigned char*>(cuda::host_alloc(kBytes));
  auto* device = static_cast<unsigned char*>(cuda::device_alloc(0, kBytes));
  std::mt19937_64 rng(11);
  for (int launch = 0; launch < 60; ++launch) {
    const std::size_t count = 1 + rng() % kPieces;
    const int threads = launch % 2 ? 1024 : 64;  // 1024: up to 5 CTAs; 64: up to 80, capped at 5 below
    const int ctas = static_cast<int>(std::min<std::size_t>(5, (count * 32 + threads - 1) / threads));
    const std::size_t offset = 1 + rng() % 63;
    for (std::size_t i = 0; i < kBytes; ++i) source[i] = static_cast<unsigned char>(rng());
    std::memset(back, 0xA5, kBytes);
    std::vector<cuda::CopyDescriptor> up, down;
    for (std::size_t piece = 0; piece < count; ++piece) {
      const std::size_t at = offset + piece * kPiece;
      up.push_back({source + at, device + at, kPiece});
      down.push_back({device + at, back + at, kPiece});
    }
    SCOPED_TRACE(::testing::Message() << "launch " << launch << ": " << count << " pieces, " << ctas << " CTAs x " << threads);
    const cuda::KernelSignal first = progress->kernel_signal();
    ASSERT_EQ(cuda::launch_inline_copy_kernel(up.data(), static_cast<std::uint32_t>(count), ctas, threads, stream, first),
              cudaSuccess);
    const cuda::KernelSignal second = progress->kernel_signal();
    ASSERT_EQ(second.number, first.number + 1);
    ASSERT_EQ(cuda::launch_inline_copy_kernel(down.data(), static_cast<std::uint32_t>(count), ctas, threads, stream, second),
              cudaSuccess);
    ASSERT_TRUE(wait_for_word(*progress, second.number)) << "the word never reached " << second.number;
    ASSERT_EQ(std::memcmp(back + offset, source + offset, count * kPiece), 0) << "bytes read once the word moved differ";
    EXPECT_EQ(back[offset - 1], 0xA5) << "a byte before the pieces was written";
    EXPECT_EQ(back[offset + count * kPiece], 0xA5) << "a byte after the pieces was written";
  }
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  cuda::device_free(0, device);
  cuda::host_free(source);
  cuda::host_free(back);
}

}  // namespace
}  // namespace kvbm::testing
