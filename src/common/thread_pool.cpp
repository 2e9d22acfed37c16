#include "common/thread_pool.hpp"

#include "common/logger.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {

ThreadPool::ThreadPool(std::size_t threads) {
  workers_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  ready_.notify_one();
}

void ThreadPool::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    // Tasks report their own errors through their completions; one that throws anyway must
    // not take the process down with it.
    try {
      task();
    } catch (...) {
      log().error("a thread-pool task failed: {}", current_exception_as_error("thread-pool task").message());
    }
  }
}

}  // namespace kvbm
