#pragma once
// Polling a condition for a short while before sleeping on it: a condition variable's
// wake-up costs tens of microseconds on a VM, more than many waits last.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace kvbm {

// Whoever may make a polled condition true calls bump(version) after releasing the lock: the
// poller watches the counter without the lock. (Polling under the lock made the other side
// collide with it now and then, and a collision on a plain mutex sleeps in the kernel: the
// same tens of microseconds of wake-up the polling was there to avoid. Bumping after the
// unlock lets the poller take the lock uncontended.)
inline void bump(std::atomic<std::uint64_t>& version) { version.fetch_add(1, std::memory_order_release); }

// Checks `ready` under `lock` (held on entry and on return); while it does not hold, releases
// the lock and yields until `version` moves or `limit` has passed. Returns ready's last value.
template <typename Lock, typename Ready>
bool poll_for(Lock& lock, std::chrono::nanoseconds limit, const std::atomic<std::uint64_t>& version, Ready&& ready) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    const std::uint64_t seen = version.load(std::memory_order_acquire);
    lock.unlock();
    bool in_time = true;
    while (version.load(std::memory_order_acquire) == seen && (in_time = std::chrono::steady_clock::now() < until)) {
      std::this_thread::yield();
    }
    lock.lock();
    if (!in_time) return ready();
  }
  return true;
}

}  // namespace kvbm
