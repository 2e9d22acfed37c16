// A worker's transfers: admitted up to concurrent_transfers at once, the rest waiting in a
// bounded queue (refused past it), each answered when it ends; drained when the worker stops.
#include "distributed/worker_impl.hpp"

#include <chrono>

namespace kvbm {

void Worker::Impl::handle_transfer(std::uint64_t id, const zmq::multipart_t& message) {
  BlockTransferRequest request = decode_request(single_frame(message, protocol::kTransferHandler),
                                                options.max_block_pairs);
  const auto serving = current_handler();
  if (request.connector_req && serving->scheduler()) serving->scheduler()->enqueue(*request.connector_req);
  admit(id, std::move(request));
}

void Worker::Impl::admit(std::uint64_t id, BlockTransferRequest request) {
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

void Worker::Impl::refuse(const BlockTransferRequest& request, std::uint64_t id) {
  const Error error = make_error(ErrorCode::Cancelled,
                                 "rank {}: {} transfers wait for a slot already, the most it keeps "
                                 "(KVBM_MAX_WAITING_TRANSFERS); this one was not started",
                                 options.rank, options.max_waiting_transfers);
  const auto serving = current_handler();
  if (request.connector_req && serving->scheduler()) serving->scheduler()->mark_complete(*request.connector_req, error);
  reply(id, protocol::kTransferHandler, error);
}

void Worker::Impl::launch(std::uint64_t id, const BlockTransferRequest& request) {
  // A plain ack (Dynamo mode) cannot carry the error: the log names the connector's request.
  std::string request_id = request.connector_req ? request.connector_req->request_id : std::string();
  // At debug level, each transfer's time in the engine (from here to its last byte) is logged:
  // set beside the leader's round trip, it splits a slow request into messaging and moving.
  const auto started = std::chrono::steady_clock::now();
  const std::size_t blocks = request.blocks.size();
  current_handler()->start(request, [this, id, request_id = std::move(request_id), started, blocks,
                                     from = request.from_pool, to = request.to_pool](const Status& status) {
    if (log().should_log(spdlog::level::debug)) {
      const auto took = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started);
      log().debug("rank {}: transfer {} of {} blocks {} -> {} took {:.1f} us in the engine", options.rank, id, blocks,
                  to_string(from), to_string(to), took.count());
    }
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

void Worker::Impl::finished() {
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

void Worker::Impl::drain() {
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

std::shared_ptr<BlockTransferHandler> Worker::Impl::current_handler() const {
  std::lock_guard lock(handler_mutex);
  return handler;
}

}  // namespace kvbm
