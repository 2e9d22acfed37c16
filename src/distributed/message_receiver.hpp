#pragma once
// Receives multipart messages from one ZeroMQ socket, polling without sleeping for a short
// while after each message, and while its owner awaits one. On a VM a sleeping thread takes
// tens of microseconds to wake, about as long as the whole round trip of a small request, and
// a busy leader's next request (or a worker's next acknowledgement) usually comes within that
// window; after a long idle spell the wake-up costs more (the virtual CPU itself was halted).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace kvbm {

class MessageReceiver {
 public:
  using Clock = std::chrono::steady_clock;

  // `spin`: how long after a message to keep polling before sleeping (0: always sleep).
  // `awaited_until` (may be null): the owner's steady-clock time, in ticks, until which it
  // awaits a message, such as the answer to a request it sent; polling goes on until then too.
  MessageReceiver(zmq::socket_t& socket, std::chrono::microseconds spin,
                  const std::atomic<std::chrono::steady_clock::rep>* awaited_until = nullptr)
      : socket_(socket), spin_(spin), awaited_until_(awaited_until) {}

  // The next message, or nullopt when none came within `wait` or a signal interrupted the wait
  // (the caller checks whether to stop). Other ZeroMQ errors throw zmq::error_t.
  std::optional<zmq::multipart_t> next(std::chrono::milliseconds wait);
  // How many times next() has been called (a test orders a send after the receiver waits).
  [[nodiscard]] std::uint64_t calls() const { return calls_.load(std::memory_order_acquire); }

 private:
  [[nodiscard]] bool polling(Clock::time_point now) const {
    return now < busy_until_ ||
           (awaited_until_ && now.time_since_epoch().count() < awaited_until_->load(std::memory_order_relaxed));
  }

  zmq::socket_t& socket_;
  std::chrono::microseconds spin_;
  const std::atomic<std::chrono::steady_clock::rep>* awaited_until_;
  std::chrono::steady_clock::time_point busy_until_{};
  std::atomic<std::uint64_t> calls_{0};
};

}  // namespace kvbm
