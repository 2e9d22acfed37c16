#include "kvbm/distributed/worker.hpp"

#include <xxhash.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/cpu_affinity.hpp"
#include "common/json_input.hpp"
#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "common/thread_pool.hpp"
#include "distributed/connection_watch.hpp"
#include "distributed/handler_data.hpp"
#include "distributed/remote_service.hpp"
#include "distributed/message_receiver.hpp"
#include "distributed/socket_ends.hpp"
#include "kvbm/distributed/dynamo_protocol.hpp"
#include "kvbm/distributed/nccl_communicator.hpp"
#include "kvbm/distributed/protocol.hpp"
#include "kvbm/memory/region.hpp"
#include "layout/chunk_io.hpp"

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

void check_block_indices(const std::vector<std::size_t>& blocks, const Layout& layout) {
  for (std::size_t block : blocks) {
    if (block >= layout.config().num_blocks) {
      throw make_error(ErrorCode::OutOfRange, "block {} is not an index below {}", block, layout.config().num_blocks);
    }
  }
}

}  // namespace

struct Worker::Impl {
  Impl(WorkerOptions opts, std::shared_ptr<BlockTransferHandler> h)
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

  ~Impl() {
    // Completions reply through the sockets: let every admitted transfer finish first.
    std::unique_lock lock(admission_mutex);
    drained.wait(lock, [&] { return in_flight == 0; });
  }

  // Never throws: a reply that cannot be sent is logged (the leader will time out on it). In
  // Dynamo mode, replies to anything but kvbm's own messages are plain acks, as Dynamo's leader
  // expects; their errors are in the log only.
  void reply(std::uint64_t id, const std::string& handler_name, const Status& status,
             std::string data = {}) noexcept {
    try {
      if (!status.ok()) {
        log().warn("rank {}: {} message {} failed: {}", options.rank, printable(handler_name), id, status.to_string());
      }
      if (options.dynamo && !handler_name.starts_with("kvbm.")) {
        send_reply(id, {});
        return;
      }
      // Most replies are a plain success: that payload is encoded once.
      const bool plain_ok = status.ok() && data.empty();
      const std::string encoded =
          plain_ok ? std::string() : protocol::encode_outcome({options.rank, nonce, status, std::move(data)});
      const std::string& payload = plain_ok ? ok_payload : encoded;
      send_reply(id, handler_name, payload);
    } catch (...) {
      log().error("rank {}: replying to message {}: {}", options.rank, id,
                  current_exception_as_error("reply").message());
    }
  }

  // [id] alone (a plain ack) when `handler_name` is empty, else [id, handler, payload].
  void send_reply(std::uint64_t id, std::string_view handler_name, std::string_view payload = {}) {
    std::lock_guard lock(push_mutex);
    zmq::multipart_t reply;
    reply.addstr(protocol::encode_id(id));
    if (!handler_name.empty()) {
      reply.addstr(std::string(handler_name));
      reply.addstr(std::string(payload));
    }
    if (!reply.send(pusher)) {
      log().error("rank {}: the reply to message {} could not be queued (no leader reading)", options.rank, id);
    }
  }

  std::shared_ptr<BlockTransferHandler> current_handler() const {
    std::lock_guard lock(handler_mutex);
    return handler;
  }

  // Dynamo's handshake messages; false for any other name. Returns through `keep_serving`
  // whether the worker goes on (pools that cannot be made end it).
  bool handle_dynamo(std::uint64_t id, const std::string& name, const zmq::multipart_t& message, bool& keep_serving) {
    if (name == dynamo::kWorkerMetadata) {
      send_reply(id, name, dynamo::encode(dynamo::WorkerMetadata{options.dynamo->device_blocks, options.dynamo->bytes_per_block}));
    } else if (name == dynamo::kLeaderMetadata) {
      send_reply(id, {});  // at once, as Dynamo's worker does; the pools follow
      dynamo::LeaderMetadata counts;
      try {
        counts = dynamo::decode_leader_metadata(single_frame(message, name));
      } catch (const Error& error) {
        log().error("rank {}: leader_metadata message {} ignored: {}", options.rank, id, error.message());
        return true;
      }
      log().info("rank {}: the leader asks for {} host and {} disk blocks", options.rank, counts.num_host_blocks,
                 counts.num_disk_blocks);
      try {
        auto fresh = options.dynamo->make_handler(counts.num_host_blocks, counts.num_disk_blocks);
        std::lock_guard lock(handler_mutex);
        retired_handlers.push_back(std::move(handler));  // transfers it started may still run
        handler = std::move(fresh);
        pools_ready = true;
      } catch (...) {
        fatal_status = current_exception_as_error(fmt::format("rank {}: making the pools the leader asked for", options.rank));
        keep_serving = false;
      }
    } else if (name == dynamo::kPing) {
      // Acked only once the pools are ready: Dynamo's leader pings until every worker is.
      if (pools_ready) send_reply(id, {});
    } else {
      return false;
    }
    return true;
  }

  // The one data frame a handler needs; errors name the frame count.
  static std::string_view single_frame(const zmq::multipart_t& message, const std::string& name) {
    if (message.size() != 3) {
      throw make_error(ErrorCode::InvalidArgument, "{} message must carry exactly one data frame, got {}",
                       printable(name), message.size() - 2);
    }
    return {message[2].data<char>(), message[2].size()};
  }

  // kvbm.fill: deterministic random bytes per (seed, rank, block), so a test can check them.
  void fill(const handler_data::BlockList& request) {
    const Layout& layout = *current_handler()->pool(request.pool);
    check_block_indices(request.blocks, layout);
    for (std::size_t block : request.blocks) {
      std::mt19937_64 rng(request.seed ^ (std::uint64_t(options.rank) << 48) ^ (block * 0x9e3779b97f4a7c15ULL));
      std::vector<std::byte> bytes(block_bytes(layout));
      for (auto& b : bytes) b = static_cast<std::byte>(rng());
      write_block(layout, block, bytes);
    }
  }

  std::string hash(const handler_data::BlockList& request) {
    const Layout& layout = *current_handler()->pool(request.pool);
    check_block_indices(request.blocks, layout);
    nlohmann::json hashes = nlohmann::json::array();
    for (std::size_t block : request.blocks) {
      const auto bytes = read_block(layout, block);
      hashes.push_back(XXH3_64bits(bytes.data(), bytes.size()));
    }
    return json_input::dump({{"hashes", hashes}});
  }

  void handle_transfer(std::uint64_t id, const zmq::multipart_t& message) {
    BlockTransferRequest request = decode_request(single_frame(message, protocol::kTransferHandler),
                                                  options.max_block_pairs);
    const auto serving = current_handler();
    if (request.connector_req && serving->scheduler()) serving->scheduler()->enqueue(*request.connector_req);
    admit(id, std::move(request));
  }

  // Transfers start on the receiving thread and are acknowledged from the thread that finishes
  // them: no hand-off to a worker thread on the way in or out (each costs tens of microseconds
  // of wake-up). At most options.concurrent_transfers run at once; the rest wait their turn, up
  // to options.max_waiting_transfers of them; one more is refused at once.
  void admit(std::uint64_t id, BlockTransferRequest request) {
    bool refused = false;
    {
      std::lock_guard lock(admission_mutex);
      if (in_flight < std::max<std::size_t>(1, options.concurrent_transfers)) {
        ++in_flight;
        running.insert(id);
      } else if (waiting.size() < options.max_waiting_transfers) {
        waiting.emplace_back(id, std::move(request));
        return;
      } else {
        refused = true;  // answered below, outside the lock: a reply may wait for the leader to read it
      }
    }
    if (refused) {
      refuse(request, id);
      return;
    }
    launch(id, request);
  }

  void refuse(const BlockTransferRequest& request, std::uint64_t id) {
    const Error error = make_error(ErrorCode::Cancelled,
                                   "rank {}: {} transfers wait for a slot already, the most it keeps "
                                   "(KVBM_MAX_WAITING_TRANSFERS); this one was not started",
                                   options.rank, options.max_waiting_transfers);
    const auto serving = current_handler();
    if (request.connector_req && serving->scheduler()) serving->scheduler()->mark_complete(*request.connector_req, error);
    reply(id, protocol::kTransferHandler, error);
  }

  void launch(std::uint64_t id, const BlockTransferRequest& request) {
    // A plain ack (Dynamo mode) cannot carry the error: the log names the connector's request.
    std::string request_id = request.connector_req ? request.connector_req->request_id : std::string();
    current_handler()->start(request, [this, id, request_id = std::move(request_id)](const Status& status) {
      if (!status.ok() && options.dynamo) {
        log().error("rank {}: transfer of request '{}' (message {}) failed: {}", options.rank, printable(request_id), id,
                    status.to_string());
      }
      bool owed = false;
      {
        std::lock_guard lock(admission_mutex);
        const auto it = running.find(id);
        if (it != running.end()) {
          running.erase(it);
          owed = true;
        }
      }
      if (owed) {
        reply(id, protocol::kTransferHandler, status);
      } else {
        log().warn("rank {}: transfer {} ended after shutdown answered it: {}", options.rank, id, status.to_string());
      }
      finished();
    });
  }

  void finished() {
    std::optional<std::pair<std::uint64_t, BlockTransferRequest>> next;
    {
      std::lock_guard lock(admission_mutex);
      if (waiting.empty()) {
        if (--in_flight == 0) drained.notify_all();
        return;
      }
      next = std::move(waiting.front());
      waiting.pop_front();
      running.insert(next->first);
    }
    launch(next->first, next->second);
  }

  void handle_reject(const zmq::multipart_t& message) {
    try {
      const auto rejection = handler_data::read_reject(single_frame(message, protocol::kReject));
      if (rejection.nonce != nonce) return;  // meant for another worker
      rejection_status = make_error(ErrorCode::InvalidArgument, "the leader rejected rank {}: {}", options.rank,
                                    printable(rejection.reason, 300));
    } catch (const Error& error) {
      log().warn("rank {}: ignored a malformed rejection: {}", options.rank, error.message());
    }
  }

  // Replicated mode's bootstrap: rank 0 makes the id, every rank joins (on this thread: every
  // rank is here at the same time, and nothing else can run before the communicator exists).
  void handle_nccl(std::uint64_t id, const std::string& name, const zmq::multipart_t& message) {
    if (!options.replicated) throw make_error(ErrorCode::InvalidArgument, "rank {} is not in replicated mode", options.rank);
    if (name == protocol::kNcclId) {
      reply(id, name, {}, options.rank == 0 ? json_input::dump({{"nccl_id", NcclCommunicator::new_unique_id()}}) : "");
      return;
    }
    const auto data = json_input::parse_object(single_frame(message, name), "kvbm.nccl_init data");
    const std::string nccl_id = json_input::required_string(data, "nccl_id", "kvbm.nccl_init data", 1024);
    const auto serving = current_handler();
    const int device = static_cast<int>(serving->pool(BlockTransferPool::Device)->kind().index());
    serving->set_communicator(
        std::make_shared<NcclCommunicator>(nccl_id, options.rank, options.world_size, device, options.nccl_timeout));
    reply(id, name, {});
  }

  void handle_diagnostic(std::uint64_t id, const std::string& name, const zmq::multipart_t& message) {
    if (name == protocol::kCancel) {
      const std::string uuid = handler_data::read_cancel(single_frame(message, name));
      const auto serving = current_handler();
      if (!serving->scheduler()) throw make_error(ErrorCode::InvalidArgument, "this worker has no connector scheduler");
      serving->scheduler()->cancel(uuid);
      reply(id, name, {});
      return;
    }
    auto request = handler_data::read_block_list(single_frame(message, name), name, options.max_block_pairs);
    pool.post([this, id, name, request = std::move(request)] {
      try {
        if (name == protocol::kFill) {
          fill(request);
          reply(id, name, {});
        } else {
          reply(id, name, {}, hash(request));
        }
      } catch (...) {
        reply(id, name, current_exception_as_error(name));
      }
    });
  }

  void handle_remote(std::uint64_t id, const std::string& name, const zmq::multipart_t& message) {
    if (!remote) throw make_error(ErrorCode::InvalidArgument, "rank {} has no remote agent (kvbm worker --remote)", options.rank);
    const std::string_view data = message.size() > 2 ? single_frame(message, name) : std::string_view{};
    if (name != protocol::kRemoteTransfer) {
      reply(id, name, {}, remote->answer(name, data));
      return;
    }
    remote->start_transfer(data).detach([this, id, name](const Status& status) { reply(id, name, status); });
  }

  // Returns false when the worker should stop. Never throws: whatever goes wrong with one
  // message is that message's error reply.
  bool dispatch(const zmq::multipart_t& message) {
    if (message.size() < 2) {
      log().warn("rank {}: dropped a message of {} frames (need id and handler)", options.rank, message.size());
      return true;
    }
    std::uint64_t id = 0;
    try {
      id = protocol::decode_id(message[0].to_string());
    } catch (const Error& error) {
      log().warn("rank {}: dropped a message: {}", options.rank, error.message());
      return true;
    }
    const std::string name = message[1].to_string();
    try {
      std::size_t bytes = 0;
      for (const auto& frame : message) bytes += frame.size();
      if (bytes > options.max_message_bytes) {
        throw make_error(ErrorCode::InvalidArgument,
                         "{} message of {} bytes is larger than the {} allowed (KVBM_MAX_MESSAGE_BYTES)", printable(name),
                         bytes, options.max_message_bytes);
      }
      bool keep_serving = true;
      if (options.dynamo && handle_dynamo(id, name, message, keep_serving)) return keep_serving;
      if (name == protocol::kTransferHandler) {
        handle_transfer(id, message);
      } else if (name == protocol::kHello) {
        reply(id, name, {}, protocol::encode_hello({nonce, options.world_size, options.replicated}));
      } else if (name == protocol::kReject) {
        handle_reject(message);
        return rejection_status.ok();
      } else if (name == protocol::kPing) {
        reply(id, name, {});
      } else if (name == protocol::kShutdown) {
        reply(id, name, {});
        return false;
      } else if (name == protocol::kNcclId || name == protocol::kNcclInit) {
        handle_nccl(id, name, message);
      } else if (name == protocol::kCancel || name == protocol::kFill || name == protocol::kHash) {
        handle_diagnostic(id, name, message);
      } else if (RemoteService::handles(name)) {
        handle_remote(id, name, message);
      } else {
        throw make_error(ErrorCode::InvalidArgument, "no handler named '{}'", printable(name));
      }
    } catch (...) {
      reply(id, name, current_exception_as_error(fmt::format("rank {}: {} message", options.rank, printable(name))));
    }
    return true;
  }

  // Answers what was admitted but not started, and gives running transfers drain_timeout.
  void drain() {
    std::deque<std::pair<std::uint64_t, BlockTransferRequest>> not_started;
    {
      std::lock_guard lock(admission_mutex);
      not_started.swap(waiting);
    }
    for (const auto& [id, request] : not_started) {
      const Error error = make_error(ErrorCode::Cancelled, "rank {} is shutting down; the request was not started",
                                     options.rank);
      const auto serving = current_handler();
      if (request.connector_req && serving->scheduler()) serving->scheduler()->mark_complete(*request.connector_req, error);
      reply(id, protocol::kTransferHandler, error);
    }
    std::vector<std::uint64_t> unfinished;
    {
      std::unique_lock lock(admission_mutex);
      if (drained.wait_for(lock, options.drain_timeout, [&] { return in_flight == 0; })) return;
      unfinished.assign(running.begin(), running.end());
      running.clear();
      abandoned = in_flight;
    }
    for (std::uint64_t id : unfinished) {
      reply(id, protocol::kTransferHandler,
            make_error(ErrorCode::Timeout, "rank {} shut down before the transfer finished (waited {} ms)", options.rank,
                       options.drain_timeout.count()));
    }
  }

  Status run() {
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

  void reconnect_subscriber() {
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

  // A leader without keys, or with other keys, never gets through: said once.
  void report_handshake_failures() {
    for (const SocketEvent& event : watch->take()) {
      if ((event.event & ConnectionWatch::kHandshakeFailures) && !handshake_reported) {
        handshake_reported = true;
        log().warn("rank {}: cannot reach the leader: {}", options.rank, describe_handshake_failure(event));
      } else if (event.event & ZMQ_EVENT_DISCONNECTED) {
        watch_dropped = true;
      }
    }
  }

  WorkerOptions options;
  mutable std::mutex handler_mutex;
  std::shared_ptr<BlockTransferHandler> handler;  // replaced once in Dynamo mode (leader_metadata)
  std::vector<std::shared_ptr<BlockTransferHandler>> retired_handlers;
  std::atomic<bool> pools_ready{!options.dynamo};
  Status fatal_status;
  std::uint64_t nonce;  // this process's incarnation of the rank, on every reply
  zmq::context_t context;
  zmq::socket_t subscriber;
  zmq::socket_t pusher;
  std::unique_ptr<ConnectionWatch> watch;  // of `subscriber`
  static constexpr int kWatchedEvents = ZMQ_EVENT_DISCONNECTED | ConnectionWatch::kHandshakeFailures;
  bool handshake_reported = false;
  bool watch_dropped = false;  // a disconnection report_handshake_failures() took
  std::mutex push_mutex;
  std::mutex admission_mutex;
  std::condition_variable drained;
  std::size_t in_flight = 0;
  std::multiset<std::uint64_t> running;  // ids of started transfers not yet answered
  std::deque<std::pair<std::uint64_t, BlockTransferRequest>> waiting;
  std::size_t abandoned = 0;
  std::atomic<bool> stopping{false};
  const std::string ok_payload = protocol::encode_outcome({options.rank, nonce, Status{}, {}});
  Status rejection_status;
  ThreadPool pool;  // destroyed before the sockets, so queued work finishes while they live
  // Destroyed first: its transfers still in flight end (with errors) and reply while sockets live.
  std::unique_ptr<RemoteService> remote;
};

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
