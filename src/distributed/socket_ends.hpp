#pragma once
// The two ends of kvbm's framing on ZeroMQ (see kvbm/distributed/protocol.hpp), set up in one
// place for the leader, the worker, and the tests and bench that stand in for either.
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "common/cpu_affinity.hpp"
#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"
#include "kvbm/distributed/curve_keys.hpp"
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

// ZeroMQ's errors for an endpoint as a kvbm Error naming it: a malformed one (no port, a name
// that does not parse, an ipc path too long for a socket address) is InvalidArgument, one the
// system refuses (an address in use, no permission) is Io.
template <typename Fn>
void with_endpoint(const std::string& endpoint, const char* verb, Fn&& fn) {
  try {
    fn();
  } catch (const zmq::error_t& error) {
    const bool malformed = error.num() == EINVAL || error.num() == ENAMETOOLONG || error.num() == EPROTONOSUPPORT ||
                           error.num() == ENOCOMPATPROTO;
    throw make_error(malformed ? ErrorCode::InvalidArgument : ErrorCode::Io, "cannot {} '{}': {}", verb,
                     printable(endpoint, 300), error.what());
  }
}

// CURVE on a leader's socket: a server with the leader's key (clients are checked by the
// context's ZapHandler). Set before bind.
inline void make_curve_server(zmq::socket_t& socket, const CurveKeyPair& keys) {
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
}

// CURVE on a worker's socket: a client with its own keys, talking to the server of
// `server_public_key` alone. Set before connect.
inline void make_curve_client(zmq::socket_t& socket, const CurveKeyPair& keys, const std::string& server_public_key) {
  socket.set(zmq::sockopt::curve_serverkey, server_public_key);
  socket.set(zmq::sockopt::curve_publickey, keys.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
}

// Whether `endpoint` is reachable from this host alone (ipc, loopback tcp).
inline bool local_endpoint(const std::string& endpoint) {
  for (const char* prefix : {"ipc://", "inproc://", "tcp://127.", "tcp://localhost:", "tcp://[::1]:", "tcp://lo:"}) {
    if (endpoint.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// The leader's end: XPUB bound to `message_endpoint`, PULL bound to its reply endpoint. The
// publisher never drops a message: when a worker's queue is full (ZMQ_SNDHWM messages it has
// not read), a send waits for room up to its ZMQ_SNDTIMEO and then fails, where a plain PUB
// would drop the message without a word. Replies larger than `max_message_bytes` are refused by
// ZeroMQ. A malformed endpoint is refused (protocol::reply_endpoint) before anything is bound.
inline void bind_leader_end(zmq::socket_t& publisher, zmq::socket_t& puller, const std::string& message_endpoint,
                            int publish_hwm = 1000, std::size_t max_message_bytes = std::size_t{16} << 20) {
  const std::string replies = protocol::reply_endpoint(message_endpoint);
  publisher.set(zmq::sockopt::linger, 0);
  publisher.set(zmq::sockopt::xpub_nodrop, 1);
  publisher.set(zmq::sockopt::sndhwm, publish_hwm);
  puller.set(zmq::sockopt::linger, 0);
  puller.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(max_message_bytes));
  with_endpoint(message_endpoint, "bind", [&] { publisher.bind(message_endpoint); });
  with_endpoint(replies, "bind", [&] { puller.bind(replies); });
}

// A worker's SUB socket, subscribed to every message on `message_endpoint`. A frame past four
// times `max_message_bytes` makes ZeroMQ drop the connection for good (ConnectionWatch).
inline void connect_worker_subscriber(zmq::socket_t& subscriber, const std::string& message_endpoint,
                                      std::size_t max_message_bytes) {
  subscriber.set(zmq::sockopt::linger, 0);
  subscriber.set(zmq::sockopt::subscribe, "");
  subscriber.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(4 * max_message_bytes));
  with_endpoint(message_endpoint, "connect to", [&] { subscriber.connect(message_endpoint); });
}

// A worker's end: SUB to every message on `message_endpoint`, PUSH to its reply endpoint. A
// message frame past four times `max_message_bytes` is dropped by ZeroMQ with the connection
// (the worker connects again: ConnectionWatch);
// up to that, the worker itself answers an oversized message with an error. A reply that cannot
// be queued within `reply_timeout` (no leader reading) fails instead of blocking for good.
inline void connect_worker_end(zmq::socket_t& subscriber, zmq::socket_t& pusher, const std::string& message_endpoint,
                               std::size_t max_message_bytes = std::size_t{16} << 20,
                               std::chrono::milliseconds reply_timeout = std::chrono::seconds(10),
                               const std::string& reply_endpoint = {}) {
  const std::string replies = reply_endpoint.empty() ? protocol::reply_endpoint(message_endpoint) : reply_endpoint;
  connect_worker_subscriber(subscriber, message_endpoint, max_message_bytes);
  pusher.set(zmq::sockopt::linger, 0);
  pusher.set(zmq::sockopt::sndtimeo, static_cast<int>(reply_timeout.count()));
  with_endpoint(replies, "connect to", [&] { pusher.connect(replies); });
}

}  // namespace kvbm
