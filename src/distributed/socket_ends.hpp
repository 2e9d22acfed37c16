#pragma once
// The two ends of kvbm's framing on ZeroMQ (see kvbm/distributed/protocol.hpp), set up in one
// place for the leader, the worker, and the tests and bench that stand in for either.
#include <string>

#include <zmq.hpp>

#include "kvbm/distributed/protocol.hpp"

namespace kvbm {

// The leader's end: PUB bound to `message_endpoint`, PULL bound to its reply endpoint.
// A malformed endpoint is refused (protocol::reply_endpoint) before anything is bound.
inline void bind_leader_end(zmq::socket_t& publisher, zmq::socket_t& puller, const std::string& message_endpoint) {
  const std::string replies = protocol::reply_endpoint(message_endpoint);
  publisher.set(zmq::sockopt::linger, 0);
  puller.set(zmq::sockopt::linger, 0);
  publisher.bind(message_endpoint);
  puller.bind(replies);
}

// A worker's end: SUB to every message on `message_endpoint`, PUSH to its reply endpoint.
inline void connect_worker_end(zmq::socket_t& subscriber, zmq::socket_t& pusher, const std::string& message_endpoint) {
  subscriber.set(zmq::sockopt::linger, 0);
  subscriber.set(zmq::sockopt::subscribe, "");
  pusher.set(zmq::sockopt::linger, 0);
  subscriber.connect(message_endpoint);
  pusher.connect(protocol::reply_endpoint(message_endpoint));
}

}  // namespace kvbm
