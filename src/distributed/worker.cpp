// The worker: its construction (sockets, CURVE, the connection watch), the receive loop with
// its announcements and reconnection, and the public calls; messages go on to
// worker_dispatch.cpp, transfers to worker_transfers.cpp.
#include "distributed/worker_impl.hpp"

#include <random>

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

// Until the leader is heard from, how often the worker says it is still waiting, and how often
// it announces itself (the leader's reply may be lost while this worker's subscription is not
// yet in place: ZeroMQ's publisher drops messages for subscribers it does not know yet).
constexpr std::chrono::milliseconds kUnheardReportInterval{10000};
constexpr std::chrono::milliseconds kAnnounceInterval{250};

std::uint64_t random_nonce() {
  std::random_device device;
  std::uint64_t nonce = 0;
  while (nonce == 0) nonce = (std::uint64_t{device()} << 32) | device();  // 0 means "no nonce" on the wire
  return nonce;
}

}  // namespace

Worker::Impl::Impl(WorkerOptions opts, std::shared_ptr<BlockTransferHandler> h)
    : options(std::move(opts)), handler(std::move(h)), nonce(random_nonce()),
      context(make_message_context(options.message_cpu)), subscriber(context, zmq::socket_type::sub),
      pusher(context, zmq::socket_type::push), pool(std::max<std::size_t>(1, options.concurrent_transfers)) {
  if (options.world_size <= 0 || options.rank < 0 || options.rank >= options.world_size) {
    throw make_error(ErrorCode::InvalidArgument, "worker rank {} is outside [0, world_size={})", options.rank,
                     options.world_size);
  }
  if (options.max_message_bytes == 0 || options.max_block_pairs == 0) {
    throw make_error(ErrorCode::InvalidArgument, "worker limits must be positive (max_message_bytes {}, max_block_pairs {})",
                     options.max_message_bytes, options.max_block_pairs);
  }
  if (options.dynamo && !options.dynamo->make_handler) {
    throw make_error(ErrorCode::InvalidArgument, "Dynamo mode needs a way to make the pools (make_handler)");
  }
  if (options.auth_key) {
    if (options.leader_public_key.empty()) {
      throw make_error(ErrorCode::InvalidArgument, "a worker with a CURVE key needs the leader's public key");
    }
    make_curve_client(subscriber, *options.auth_key, options.leader_public_key);
    make_curve_client(pusher, *options.auth_key, options.leader_public_key);
  }
  connect_worker_end(subscriber, pusher, options.leader_endpoint, options.max_message_bytes, std::chrono::seconds(10),
                     options.reply_endpoint);
  watch = std::make_unique<ConnectionWatch>(context, subscriber, kWatchedEvents);
  if (options.remote) remote = std::make_unique<RemoteService>(*options.remote, *handler, options.max_block_pairs);
}


Worker::Impl::~Impl() {
  // Completions reply through the sockets: let every admitted transfer finish first.
  std::unique_lock lock(admission_mutex);
  drained.wait(lock, [&] { return in_flight == 0; });
}

Status Worker::Impl::run() {
  log().info("rank {}/{} serving {}", options.rank, options.world_size, printable(options.leader_endpoint, 300));
  std::optional<ScopedThreadCpu> on_message_cpu;
  try {
    on_message_cpu.emplace(options.message_cpu);
  } catch (const Error& error) {  // checked when the context was made: the CPU went away since
    return error;
  }
  // Announced (id 0) until the leader is heard from: it learns of a new, restarted or
  // impostor process of a rank without asking.
  // Not in Dynamo mode: Dynamo's leader would count the announcement as a reply.
  const auto announce = [&] {
    if (!options.dynamo) reply(0, protocol::kHello, {}, protocol::encode_hello({nonce, options.world_size, options.replicated}));
  };
  MessageReceiver receiver(subscriber, spin_budgets(options.latency).message);
  auto started = Clock::now();
  auto next_report = started + std::min(kUnheardReportInterval, options.leader_wait);
  bool heard = false;
  Status status;
  announce();
  while (!stopping.load()) {
    std::optional<zmq::multipart_t> message;
    try {
      message = receiver.next(heard ? std::chrono::milliseconds(100) : kAnnounceInterval);
    } catch (...) {
      status = current_exception_as_error(fmt::format("rank {}: receiving", options.rank));
      break;
    }
    if (message) {
      heard = true;
      if (!dispatch(*message)) break;
      continue;
    }
    report_handshake_failures();
    if (std::exchange(watch_dropped, false) && heard) {
      // Cut off after the leader was heard (a frame too large for the socket, a leader gone):
      // connect anew and announce this process again until the leader answers, within
      // leader_wait from now.
      try {
        reconnect_subscriber();
      } catch (...) {
        status = current_exception_as_error(fmt::format("rank {}: connecting to the leader again", options.rank));
        break;
      }
      heard = false;
      started = Clock::now();
      announce();
      continue;
    }
    if (heard) continue;
    const auto now = Clock::now();
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - started);
    if (waited >= options.leader_wait) {
      status = make_error(ErrorCode::Timeout, "rank {}: no word from the leader at {} within {} ms; is it running and "
                          "reachable from here?", options.rank, printable(options.leader_endpoint, 300),
                          options.leader_wait.count());
      break;
    }
    announce();
    if (now >= next_report) {
      log().warn("rank {}: no word yet from the leader at {} after {} ms (giving up after {} ms)", options.rank,
                 printable(options.leader_endpoint, 300), waited.count(), options.leader_wait.count());
      next_report = now + kUnheardReportInterval;
    }
  }
  drain();
  if (!status.ok()) return status;
  return fatal_status.ok() ? rejection_status : fatal_status;
}

void Worker::Impl::reconnect_subscriber() {
  log().warn("rank {}: the connection to the leader at {} was dropped (a message over {} bytes, or the leader went "
             "away); connecting again", options.rank, printable(options.leader_endpoint, 300),
             4 * options.max_message_bytes);
  watch.reset();
  subscriber.close();
  subscriber = zmq::socket_t(context, zmq::socket_type::sub);
  if (options.auth_key) make_curve_client(subscriber, *options.auth_key, options.leader_public_key);
  connect_worker_subscriber(subscriber, options.leader_endpoint, options.max_message_bytes);
  watch = std::make_unique<ConnectionWatch>(context, subscriber, kWatchedEvents);
}

void Worker::Impl::report_handshake_failures() {
  for (const SocketEvent& event : watch->take()) {
    if ((event.event & ConnectionWatch::kHandshakeFailures) && !handshake_reported) {
      handshake_reported = true;
      log().warn("rank {}: cannot reach the leader: {}", options.rank, describe_handshake_failure(event));
    } else if (event.event & ZMQ_EVENT_DISCONNECTED) {
      watch_dropped = true;
    }
  }
}
Worker::Worker(WorkerOptions options, std::shared_ptr<BlockTransferHandler> handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

Worker::~Worker() = default;

Status Worker::run() { return impl_->run(); }

void Worker::stop() { impl_->stopping.store(true); }

std::size_t Worker::abandoned_transfers() const {
  std::lock_guard lock(impl_->admission_mutex);
  return impl_->abandoned;
}

}  // namespace kvbm
