#pragma once
// Polling a condition for a short while before sleeping on it: a condition variable's
// wake-up costs tens of microseconds on a VM, more than many waits last.
#include <chrono>
#include <thread>

namespace kvbm {

// Checks `ready` under `lock` (held on entry and on return), releasing the lock and yielding
// between tries, until it holds or `limit` has passed; returns its last value.
template <typename Lock, typename Ready>
bool poll_for(Lock& lock, std::chrono::nanoseconds limit, Ready&& ready) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!ready() && std::chrono::steady_clock::now() < until) {
    lock.unlock();
    std::this_thread::yield();
    lock.lock();
  }
  return ready();
}

}  // namespace kvbm
