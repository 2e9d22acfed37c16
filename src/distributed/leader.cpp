// The leader: its construction (endpoints bound, CURVE set up, the reply loop started) and the
// public calls, which hand on to leader_messages.cpp and leader_registration.cpp.
#include "distributed/leader_impl.hpp"

namespace kvbm {

using namespace leader_detail;

Leader::Impl::Impl(LeaderOptions opts)
    : options(std::move(opts)),
      world_size(options.world_size),
      replicated(options.replicated),
      context(make_message_context(options.message_cpu)),
      publisher(context, zmq::socket_type::xpub),
      puller(context, zmq::socket_type::pull) {
  if (world_size <= 0) throw make_error(ErrorCode::InvalidArgument, "leader world size must be > 0, got {}", world_size);
  if (options.publish_hwm <= 0) {
    throw make_error(ErrorCode::InvalidArgument, "leader publish_hwm must be > 0, got {}", options.publish_hwm);
  }
  if (options.auth_key) {
    if (options.auth_peers.empty()) {
      throw make_error(ErrorCode::InvalidArgument, "a leader with a CURVE key needs the workers' public keys (auth_peers)");
    }
    zap = std::make_unique<ZapHandler>(context, options.auth_peers);  // before the server sockets bind
    make_curve_server(publisher, *options.auth_key);
    make_curve_server(puller, *options.auth_key);
  } else if (!local_endpoint(options.message_endpoint)) {
    log().warn("leader: {} is reachable from other hosts and has no CURVE keys: anyone who reaches it can drive the "
               "workers (--auth-key, --auth-peers)", printable(options.message_endpoint, 300));
  }
  bind_leader_end(publisher, puller, options.message_endpoint, options.publish_hwm, options.max_message_bytes);
  handshakes = std::make_unique<ConnectionWatch>(context, puller, ConnectionWatch::kHandshakeFailures);
  receiver = std::thread([this] { receive_loop(); });
}

Leader::Impl::~Impl() {
  stopping = true;
  receiver.join();
}

Leader::Leader(LeaderOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Leader::Leader(std::string message_endpoint, int world_size, std::optional<int> message_cpu)
    : Leader(LeaderOptions{.message_endpoint = std::move(message_endpoint), .world_size = world_size,
                           .message_cpu = message_cpu}) {}

Leader::~Leader() = default;

void Leader::wait_for_workers(std::chrono::milliseconds timeout) {
  impl_->wait_for_workers(timeout);
  if (impl_->replicated) init_replicated(timeout);
}

void Leader::init_replicated(std::chrono::milliseconds timeout) {
  const LeaderResult id = send(protocol::kNcclId, {}, timeout);
  id.status.throw_if_error();
  std::string nccl_id;
  for (const auto& outcome : id.outcomes) {
    if (outcome.rank == 0 && !outcome.data.empty()) {
      nccl_id = json_input::required_string(json_input::parse_object(outcome.data, "rank 0's NCCL id"), "nccl_id",
                                            "rank 0's NCCL id", 1024);
    }
  }
  if (nccl_id.empty()) throw make_error(ErrorCode::Internal, "rank 0 sent no NCCL id");
  const LeaderResult joined = send(protocol::kNcclInit, {json_input::dump({{"nccl_id", nccl_id}})}, timeout);
  joined.status.throw_if_error();
  log().info("leader: every rank joined a new NCCL communicator");
}

LeaderResult Leader::send(const std::string& handler, const std::vector<std::string>& frames,
                          std::chrono::milliseconds timeout) {
  return impl_->send(handler, frames, timeout);
}

std::future<LeaderResult> Leader::send_async(const std::string& handler, const std::vector<std::string>& frames,
                                             std::chrono::milliseconds timeout) {
  return impl_->send_async(handler, frames, timeout);
}

LeaderResult Leader::transfer(const BlockTransferRequest& request, std::chrono::milliseconds timeout) {
  LeaderResult result = send(protocol::kTransferHandler, {encode_request(request)}, timeout);
  if (result.status.ok() && request.connector_req) {
    std::lock_guard lock(impl_->finished_mutex);
    auto& list = request.to_pool == BlockTransferPool::Device ? impl_->finished.loading : impl_->finished.saving;
    list.push_back(request.connector_req->request_id);
  }
  return result;
}

LeaderResult Leader::cancel(const std::string& uuid, std::chrono::milliseconds timeout) {
  return send(protocol::kCancel, {json_input::dump({{"uuid", uuid}})}, timeout);
}

std::vector<int> Leader::restarted_ranks() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<int> restarted;
  for (const auto& [rank, state] : impl_->ranks) {
    if (state.restarted) restarted.push_back(rank);
  }
  return restarted;
}

void Leader::acknowledge_restart(int rank) {
  std::lock_guard lock(impl_->mutex);
  const auto it = impl_->ranks.find(rank);
  if (it == impl_->ranks.end() || !it->second.restarted) {
    throw make_error(ErrorCode::InvalidArgument, "rank {} has not restarted", rank);
  }
  it->second.restarted = false;
}

FinishedRequests Leader::get_finished() {
  std::lock_guard lock(impl_->finished_mutex);
  return std::exchange(impl_->finished, {});
}

int Leader::world_size() const { return impl_->world_size; }

}  // namespace kvbm
