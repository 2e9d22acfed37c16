// A remote agent's peers: their endpoints made from imported metadata on every lane (each packed
// remote key copied into a padded buffer first), closed on every lane with every transfer to
// them answered when they break, and the notifications that writes carry, decoded with their
// lengths checked.
#include "remote/quiet_ucx_calls.hpp"
#include "remote/remote_agent_impl.hpp"

namespace kvbm {

using namespace remote_agent_parts;

void RemoteAgent::Impl::register_notification_handler() {
  ucp_am_handler_param_t param{};
  param.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
  param.id = kNotificationId;
  param.arg = this;
  param.cb = [](void* arg, const void*, std::size_t, void* data, std::size_t length,
                const ucp_am_recv_param_t* recv) -> ucs_status_t {
    auto* self = static_cast<Impl*>(arg);
    if (recv->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
      log().warn("agent {}: dropped a notification of {} bytes (too long)", self->options.name, length);
      return UCS_OK;
    }
    self->receive(decode_notification(data, length), length);
    return UCS_OK;
  };
  const ucs_status_t status = ucp_worker_set_am_recv_handler(worker.worker(), &param);
  if (status != UCS_OK) remote::throw_ucx(status, "notification handler");
}

void RemoteAgent::Impl::receive(std::optional<RemoteNotification> notification, std::size_t length) {
  if (!notification) {
    log().warn("agent {}: dropped a malformed notification of {} bytes", options.name, length);
    return;
  }
  std::lock_guard lock(notifications_mutex);
  if (notifications.size() >= std::max<std::size_t>(1, options.max_pending_notifications)) {
    log().warn("agent {}: {} notifications not taken; dropped the oldest, from {}", options.name,
               notifications.size(), printable(notifications.front().peer));
    notifications.pop_front();
  }
  notifications.push_back(std::move(*notification));
  notification_arrived.notify_all();
}

void RemoteAgent::Impl::on_endpoint_error(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* link = static_cast<Link*>(arg);
  if (!link->failure) {
    link->failure = make_error(ErrorCode::Io, "the connection to peer {} failed: {}", printable(link->peer_name),
                               ucs_status_string(status));
  }
}

void RemoteAgent::Impl::close_link(Lane& lane, Peer& peer, const Error& why) {
  Link& link = peer.links[lane.index];
  if (!link.failure) link.failure = why;
  for (auto& keys : link.keys) {
    for (ucp_rkey_h key : keys) ucp_rkey_destroy(key);
  }
  link.keys.clear();
  if (!link.endpoint) return;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_EP_CLOSE_FLAG_FORCE;
  ucp_ep_h endpoint = std::exchange(link.endpoint, nullptr);
  finish_request(lane, ucp_ep_close_nbx(endpoint, &param));
  // Where the transport cannot report failures, closing does not end the operations in
  // flight: the endpoint is gone, so they never touch memory again, and are answered now.
  for (auto it = lane.pending.begin(); it != lane.pending.end();) {
    Pending& transfer = **it++;
    if (transfer.peer.get() != &peer) continue;
    transfer.abandoned = true;
    lane.abandoned.push_back(std::move(*transfer.at));
    lane.pending.erase(transfer.at);
    lane.worker.add_outstanding(-1);
    transfer.local.reset();
    answer(transfer, failure_of(transfer, UCS_ERR_CANCELED));
  }
}

void RemoteAgent::Impl::close_everywhere(Lane& lane, const std::shared_ptr<Peer>& peer, const Error& why) {
  for (auto& other : lanes) {
    if (other.get() == &lane) continue;
    other->worker.post([this, other = other.get(), peer, why] { close_link(*other, *peer, why); });
  }
  close_link(lane, *peer, why);
}

void RemoteAgent::Impl::drain(Lane& lane) {
  while (!lane.pending.empty()) ucp_worker_progress(lane.worker.worker());
}

void RemoteAgent::Impl::expire(Lane& lane, UcxWorker::Clock::time_point now) {
  std::vector<std::shared_ptr<Peer>> late;
  for (const auto& transfer : lane.pending) {
    if (now >= transfer->deadline && transfer->peer->links[lane.index].endpoint) late.push_back(transfer->peer);
  }
  for (const auto& peer : late) {
    if (!peer->links[lane.index].endpoint) continue;  // named twice
    close_everywhere(lane, peer, make_error(ErrorCode::Timeout, "no answer from peer {} within {} ms; its connection is closed",
                                            printable(peer->metadata.name), options.transfer_timeout.count()));
  }
}

void RemoteAgent::Impl::connect(Lane& lane, Peer& peer) {
  Link& link = peer.links[lane.index];
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(peer.metadata.worker_address.data());
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = &Impl::on_endpoint_error;
  params.err_handler.arg = &link;
  ucs_status_t status = UCS_OK;
  {
    const remote::QuietUcxCalls quiet;  // the refusal below is expected over shared memory
    status = ucp_ep_create(lane.worker.worker(), &params, &link.endpoint);
  }
  if (status == UCS_ERR_UNREACHABLE) {
    // Shared-memory transports cannot report a peer's failure: without that, a dead peer is
    // found by the transfer timeout (and the error handler never runs).
    params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    status = ucp_ep_create(lane.worker.worker(), &params, &link.endpoint);
  }
  if (status != UCS_OK) {
    link.endpoint = nullptr;
    throw make_error(ErrorCode::InvalidArgument, "cannot connect to peer {}: UCX {}", printable(peer.metadata.name),
                     ucs_status_string(status));
  }
  for (const ExportedLayout& layout : peer.metadata.layouts) {
    link.keys.emplace_back();
    for (std::size_t r = 0; r < layout.regions.size(); ++r) {
      std::string padded = layout.regions[r].remote_key;
      padded.resize(padded.size() + kRemoteKeyPadding, '\0');
      ucp_rkey_h key = nullptr;
      status = ucp_ep_rkey_unpack(link.endpoint, padded.data(), &key);
      if (status != UCS_OK) {
        const Error error = make_error(ErrorCode::InvalidArgument, "peer {}: remote key of region {} of layout {}: UCX {}",
                                       printable(peer.metadata.name), r, layout.info.id, ucs_status_string(status));
        close_link(lane, peer, error);
        throw error;
      }
      link.keys.back().push_back(key);
    }
  }
}

std::shared_ptr<Peer> RemoteAgent::Impl::find_peer(const std::string& name) const {
  std::lock_guard lock(mutex);
  const auto it = peers.find(name);
  if (it == peers.end()) throw make_error(ErrorCode::InvalidArgument, "no peer named {} was imported", printable(name));
  return it->second;
}

std::uint32_t RemoteAgent::Impl::layout_index(const Peer& peer, std::uint32_t id) {
  const auto& layouts = peer.metadata.layouts;
  const auto it = std::find_if(layouts.begin(), layouts.end(),
                               [&](const ExportedLayout& layout) { return layout.info.id == id; });
  if (it == layouts.end()) {
    throw make_error(ErrorCode::InvalidArgument, "peer {} exported no layout {}", printable(peer.metadata.name), id);
  }
  return static_cast<std::uint32_t>(it - layouts.begin());
}

}  // namespace kvbm
