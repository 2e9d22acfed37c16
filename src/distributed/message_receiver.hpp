#pragma once
// Receives multipart messages from one ZeroMQ socket, polling without sleeping for a short
// while after each message. On a VM a sleeping thread takes tens of microseconds to wake, about
// as long as the whole round trip of a small request, and a busy leader's next request (or a
// worker's next acknowledgement) usually comes within that window.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace kvbm {

class MessageReceiver {
 public:
  // `spin`: how long after a message to keep polling before sleeping (0: always sleep).
  MessageReceiver(zmq::socket_t& socket, std::chrono::microseconds spin) : socket_(socket), spin_(spin) {}

  // The next message, or nullopt when none came within `wait` or a signal interrupted the wait
  // (the caller checks whether to stop). Other ZeroMQ errors throw zmq::error_t.
  std::optional<zmq::multipart_t> next(std::chrono::milliseconds wait);
  // How many times next() has been called (a test orders a send after the receiver waits).
  [[nodiscard]] std::uint64_t calls() const { return calls_.load(std::memory_order_acquire); }

 private:
  zmq::socket_t& socket_;
  std::chrono::microseconds spin_;
  std::chrono::steady_clock::time_point busy_until_{};
  std::atomic<std::uint64_t> calls_{0};
};

}  // namespace kvbm
