#pragma once
// Runs `work(chunk)` for every chunk of [0, chunks) on the calling thread and on up to `helpers`
// threads of a pool, returning when every chunk is done. The caller takes chunks as the helpers
// do, so a pool busy with other work makes the call slower, never stuck: with no helper free,
// the caller runs every chunk itself. For CPU work on the submitting thread's critical path
// (checking a large request), where one thread is slower than the hardware it feeds.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>

#include "common/thread_pool.hpp"

namespace kvbm {

template <typename Work>
void run_shared_chunks(ThreadPool& pool, std::size_t helpers, std::size_t chunks, Work&& work) {
  struct Shared {
    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> done{0};
    std::mutex error_mutex;
    std::exception_ptr error;
  };
  if (chunks == 0) return;
  auto shared = std::make_shared<Shared>();
  // A helper that starts after every chunk was taken finds nothing left and returns without
  // touching `work`: only `shared`, which it keeps alive itself.
  const auto take_chunks = [chunks, &work](Shared& state) {
    for (std::size_t chunk; (chunk = state.next.fetch_add(1)) < chunks;) {
      try {
        work(chunk);
      } catch (...) {
        std::lock_guard lock(state.error_mutex);
        if (!state.error) state.error = std::current_exception();
      }
      if (state.done.fetch_add(1) + 1 == chunks) state.done.notify_one();
    }
  };
  for (std::size_t h = 0; h < std::min(helpers, chunks - 1); ++h) {
    pool.post([shared, take_chunks] { take_chunks(*shared); });
  }
  take_chunks(*shared);
  // Chunks still running on helpers: they were taken before the caller ran out, and end soon.
  for (std::size_t done; (done = shared->done.load()) < chunks;) shared->done.wait(done);
  if (shared->error) std::rethrow_exception(shared->error);
}

}  // namespace kvbm
