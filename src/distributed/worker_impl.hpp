#pragma once
// The worker's inner object, shared by its files: worker.cpp (construction, the receive loop,
// reconnection), worker_dispatch.cpp (what each message asks for, and the replies) and
// worker_transfers.cpp (transfers admitted, queued, run and answered).
#include "kvbm/distributed/worker.hpp"

#include <xxhash.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
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

struct Worker::Impl {
  Impl(WorkerOptions opts, std::shared_ptr<BlockTransferHandler> h);
  ~Impl();

  // Never throws: a reply that cannot be sent is logged (the leader will time out on it). In
  // Dynamo mode, replies to anything but kvbm's own messages are plain acks, as Dynamo's leader
  // expects; their errors are in the log only.
  void reply(std::uint64_t id, const std::string& handler_name, const Status& status,
             std::string data = {}) noexcept;

  // [id] alone (a plain ack) when `handler_name` is empty, else [id, handler, payload].
  void send_reply(std::uint64_t id, std::string_view handler_name, std::string_view payload = {});

  std::shared_ptr<BlockTransferHandler> current_handler() const;

  // Dynamo's handshake messages; false for any other name. Returns through `keep_serving`
  // whether the worker goes on (pools that cannot be made end it).
  bool handle_dynamo(std::uint64_t id, const std::string& name, const zmq::multipart_t& message, bool& keep_serving);

  // The one data frame a handler needs; errors name the frame count.
  static std::string_view single_frame(const zmq::multipart_t& message, const std::string& name);

  // kvbm.fill: deterministic random bytes per (seed, rank, block), so a test can check them.
  void fill(const handler_data::BlockList& request);

  std::string hash(const handler_data::BlockList& request);

  void handle_transfer(std::uint64_t id, const zmq::multipart_t& message);

  // Transfers start on the receiving thread and are acknowledged from the thread that finishes
  // them: no hand-off to a worker thread on the way in or out (each costs tens of microseconds
  // of wake-up). At most options.concurrent_transfers run at once; the rest wait their turn, up
  // to options.max_waiting_transfers of them; one more is refused at once.
  void admit(std::uint64_t id, BlockTransferRequest request);

  void refuse(const BlockTransferRequest& request, std::uint64_t id);

  void launch(std::uint64_t id, const BlockTransferRequest& request);

  void finished();

  void handle_reject(const zmq::multipart_t& message);

  // Replicated mode's bootstrap: rank 0 makes the id, every rank joins (on this thread: every
  // rank is here at the same time, and nothing else can run before the communicator exists).
  void handle_nccl(std::uint64_t id, const std::string& name, const zmq::multipart_t& message);

  void handle_diagnostic(std::uint64_t id, const std::string& name, const zmq::multipart_t& message);

  void handle_remote(std::uint64_t id, const std::string& name, const zmq::multipart_t& message);

  // Returns false when the worker should stop. Never throws: whatever goes wrong with one
  // message is that message's error reply.
  bool dispatch(const zmq::multipart_t& message);

  // Answers what was admitted but not started, and gives running transfers drain_timeout.
  void drain();

  Status run();

  void reconnect_subscriber();

  // A leader without keys, or with other keys, never gets through: said once.
  void report_handshake_failures();

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

}  // namespace kvbm
