#pragma once
// Tells a worker that ZeroMQ dropped the connection of its SUB socket. A message frame past
// ZMQ_MAXMSGSIZE is a protocol error to ZeroMQ, which then closes the connection and never
// connects again: the worker would hear nothing more. The watch is a socket monitor; the worker
// checks it while idle, makes a new socket and announces itself again.
#include <string>
#include <zmq.hpp>

namespace kvbm {

class ConnectionWatch {
 public:
  // Starts monitoring `socket` (which must outlive the watch, or be watched anew once replaced).
  ConnectionWatch(zmq::context_t& context, zmq::socket_t& socket);
  ~ConnectionWatch();
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  // Whether a connection of the socket closed since the last call (never blocks).
  [[nodiscard]] bool dropped();

 private:
  zmq::socket_t& socket_;
  std::string address_;
  zmq::socket_t events_;
};

}  // namespace kvbm
