#pragma once
// What ZeroMQ does to a socket's connections, as a socket monitor reports it, read without
// blocking. A worker uses it to learn that its SUB socket was cut off: a message frame past
// ZMQ_MAXMSGSIZE is a protocol error to ZeroMQ, which then closes the connection and never
// connects again, so the worker makes a new socket and announces itself again. Both sides use it
// to say once why a CURVE handshake failed.
#include <cstdint>
#include <string>
#include <vector>
#include <zmq.hpp>

namespace kvbm {

struct SocketEvent {
  std::uint16_t event = 0;  // ZMQ_EVENT_*
  std::uint32_t value = 0;  // its value (the errno or ZMTP error of a failed handshake)
  std::string address;      // the peer's endpoint
};

class ConnectionWatch {
 public:
  static constexpr int kHandshakeFailures =
      ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

  // Starts monitoring `socket` for `events` (which must outlive the watch, or be watched anew
  // once replaced).
  ConnectionWatch(zmq::context_t& context, zmq::socket_t& socket, int events = ZMQ_EVENT_DISCONNECTED);
  ~ConnectionWatch();
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  // The events since the last call (never blocks).
  [[nodiscard]] std::vector<SocketEvent> take();

 private:
  zmq::socket_t& socket_;
  std::string address_;
  zmq::socket_t events_;
};

// "why a handshake failed" for a handshake-failure event.
[[nodiscard]] std::string describe_handshake_failure(const SocketEvent& event);

}  // namespace kvbm
