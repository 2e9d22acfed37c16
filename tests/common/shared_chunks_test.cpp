// run_shared_chunks runs every chunk exactly once, returns only after the last one, passes the
// first error on, and finishes on the calling thread alone when the pool's threads are all busy.
#include "common/shared_chunks.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

namespace kvbm {
namespace {

TEST(SharedChunks, EveryChunkRunsOnceBeforeTheCallReturns) {
  ThreadPool pool(3);
  for (const std::size_t chunks : {0u, 1u, 2u, 7u, 64u}) {
    std::vector<std::atomic<int>> runs(chunks);
    run_shared_chunks(pool, 3, chunks, [&](std::size_t chunk) { runs[chunk].fetch_add(1); });
    for (std::size_t c = 0; c < chunks; ++c) EXPECT_EQ(runs[c].load(), 1) << "chunk " << c << " of " << chunks;
  }
}

TEST(SharedChunks, TheFirstErrorIsRethrownAfterEveryChunkEnded) {
  ThreadPool pool(2);
  std::atomic<int> ended{0};
  EXPECT_THROW(run_shared_chunks(pool, 2, 16,
                                 [&](std::size_t chunk) {
                                   ended.fetch_add(1);
                                   if (chunk == 5) throw std::runtime_error("chunk 5");
                                 }),
               std::runtime_error);
  EXPECT_EQ(ended.load(), 16);
}

// Every pool thread held by a task that waits for the call to end: the caller runs all chunks.
TEST(SharedChunks, ABusyPoolLeavesEveryChunkToTheCaller) {
  ThreadPool pool(2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> blocked{0};
  for (int i = 0; i < 2; ++i) {
    pool.post([&blocked, released] {
      blocked.fetch_add(1);
      released.wait();
    });
  }
  while (blocked.load() < 2) std::this_thread::yield();
  const auto caller = std::this_thread::get_id();
  std::atomic<int> elsewhere{0};
  run_shared_chunks(pool, 2, 8, [&](std::size_t) { elsewhere.fetch_add(std::this_thread::get_id() != caller); });
  EXPECT_EQ(elsewhere.load(), 0);
  release.set_value();
}

}  // namespace
}  // namespace kvbm
