// The one thread that runs Python done-callbacks (Handle.add_done_callback, and through it
// `await handle`): a callback that takes long, or waits, then holds back other callbacks but
// never kvbm's backend threads, which only queue the call.
#include "callback_thread.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace kvbm::python {
namespace {

class CallbackThread {
 public:
  void post(std::function<void()> call) {
    {
      std::lock_guard lock(mutex_);
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
      calls_.push_back(std::move(call));
    }
    ready_.notify_one();
  }
  ~CallbackThread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      ready_.wait(lock, [this] { return stopping_ || !calls_.empty(); });
      if (calls_.empty()) return;  // stopping, and nothing left
      std::function<void()> call = std::move(calls_.front());
      calls_.pop_front();
      lock.unlock();
      call();
      call = nullptr;  // whatever it holds is released outside the lock
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> calls_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

void run_on_callback_thread(std::function<void()> call) {
  static CallbackThread thread;
  thread.post(std::move(call));
}

}  // namespace kvbm::python
