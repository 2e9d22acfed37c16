#pragma once
// The two ends of kvbm's framing on ZeroMQ (see kvbm/distributed/protocol.hpp), set up in one
// place for the leader, the worker, and the tests and bench that stand in for either.
#include <optional>
#include <string>

#include <zmq.hpp>

#include "common/cpu_affinity.hpp"
#include "kvbm/common/error.hpp"
#include "kvbm/distributed/protocol.hpp"

namespace kvbm {

// A context of one I/O thread, which runs on `io_cpu` when it is set (see
// common/cpu_affinity.hpp). The CPU is checked first: ZeroMQ aborts the process when it cannot
// apply an affinity.
inline zmq::context_t make_message_context(std::optional<int> io_cpu) {
  if (io_cpu) require_usable_cpu(*io_cpu);
  zmq::context_t context(1);
  if (io_cpu && zmq_ctx_set(context.handle(), ZMQ_THREAD_AFFINITY_CPU_ADD, *io_cpu) != 0) {
    throw make_error(ErrorCode::Io, "ZeroMQ refused CPU {} for its I/O thread: {}", *io_cpu, zmq_strerror(zmq_errno()));
  }
  return context;
}

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
