// A remote agent's transfers: the plan (direct, or two hops through pinned staging), the RMA
// operations issued on the lanes' progress threads (a large transfer cut into a part a lane),
// then a flush and the notification, each transfer answered once, by its end, its failure or
// its deadline.
#include "remote/remote_agent_impl.hpp"

namespace kvbm {

using namespace remote_agent_parts;

TransferPlan RemoteAgent::Impl::plan(StorageKind local, StorageKind remote_kind, bool local_is_source) const {
  if (local.is_device() && remote_kind.is_host() && stager && !options.capabilities.allow_gpu_rdma) {
    return local_is_source ? TransferPlan{TwoHopPlan{TransferStrategy::CudaAsyncD2H, StorageKind::pinned(),
                                                     TransferStrategy::NixlWrite}}
                           : TransferPlan{TwoHopPlan{TransferStrategy::NixlReadFlipped, StorageKind::pinned(),
                                                     TransferStrategy::CudaAsyncH2D}};
  }
  return local_is_source ? select_strategy(local, true, remote_kind, false, options.capabilities)
                         : select_strategy(remote_kind, false, local, true, options.capabilities);
}

TransferHandle RemoteAgent::Impl::start(const LayoutPtr& local, const std::string& peer_name, std::uint32_t id,
                     std::span<const BlockPair> pairs, bool write, std::string notification) {
  // Waiters sleep at once: the progress threads move the bytes, and need the CPU more than
  // a waiter needs a fast wake-up (a remote transfer takes far longer than one).
  auto state = std::make_shared<CompletionState>(std::chrono::microseconds(0));
  try {
    if (!local) throw make_error(ErrorCode::InvalidArgument, "no local layout");
    if (notification.size() > kMaxNotificationBytes) {
      throw make_error(ErrorCode::InvalidArgument, "notification of {} bytes (at most {})", notification.size(),
                       kMaxNotificationBytes);
    }
    std::shared_ptr<Peer> peer = find_peer(peer_name);
    const std::uint32_t index = layout_index(*peer, id);
    const ExportedLayout& remote = peer->metadata.layouts[index];
    const TransferPlan chosen = plan(local->kind(), remote.info.kind, write);
    auto ops = std::make_shared<std::vector<RemoteOp>>(remote::expand_remote(*local, remote, pairs, write));
    if (std::holds_alternative<TwoHopPlan>(chosen)) return stage(local, peer_name, id, pairs, write, std::move(notification));
    const std::string what = fmt::format("remote {} of {} blocks {} peer {} layout {}", write ? "write" : "read",
                                         pairs.size(), write ? "to" : "from", printable(peer_name), id);
    const std::string encoded = notification.empty() ? std::string() : encode_notification(options.name, notification);
    std::size_t bytes = 0;
    for (const RemoteOp& op : *ops) bytes += op.bytes;
    const std::size_t parts = parts_for(options, bytes, ops->size());
    std::shared_ptr<PartsJoin> join;
    if (parts > 1) {
      join = std::make_shared<PartsJoin>();
      join->state = state;
      join->peer = peer;
      join->what = what;
      join->notification = encoded;
      join->layout_index = index;
      join->left = parts;
    }
    // Part k takes ops [k * n / parts, (k + 1) * n / parts) on lane k; one part runs on lane 0.
    for (std::size_t k = 0; k < parts; ++k) {
      auto transfer = std::make_shared<Pending>();
      transfer->state = join ? nullptr : state;
      transfer->join = join;
      transfer->peer = peer;
      transfer->local = local;
      transfer->what = what;
      if (!join) transfer->notification = encoded;
      transfer->deadline = UcxWorker::Clock::now() + options.transfer_timeout;
      transfer->lane = lanes[k].get();
      const std::size_t first = k * ops->size() / parts;
      const std::size_t last = (k + 1) * ops->size() / parts;
      transfer->lane->worker.post([this, transfer, ops, first, last, write, index]() mutable {
        issue(std::make_unique<Pending>(std::move(*transfer)), std::span(*ops).subspan(first, last - first), write, index);
      });
    }
  } catch (const Error& error) {
    state->complete(error);
  }
  return TransferHandle(state);
}

TransferHandle RemoteAgent::Impl::stage(const LayoutPtr& local, const std::string& peer, std::uint32_t id,
                     std::span<const BlockPair> pairs, bool write, std::string notification) {
  return stager->start(local, {pairs.begin(), pairs.end()}, write,
                       [this, peer, id, write, notification](const LayoutPtr& staging,
                                                             std::span<const BlockPair> slice, bool last) {
                         return start(staging, peer, id, slice, write, last ? notification : std::string());
                       });
}

void RemoteAgent::Impl::issue(std::unique_ptr<Pending> owned, std::span<const RemoteOp> ops, bool write,
           std::uint32_t layout_index) {
  Lane& lane = *owned->lane;
  Link& link = owned->peer->links[lane.index];
  std::optional<Error> unconnected;
  if (!link.failure && !link.endpoint) {
    // This lane's first transfer to the peer. (Made at import, a link no transfer used could
    // still be in UCX's connection handshake when the agents close, which UCX does not survive.)
    try {
      connect(lane, *owned->peer);
    } catch (const Error& error) {
      unconnected = Error(error.code(), owned->what + ": " + error.message());
    }
  }
  if (unconnected || link.failure || !link.endpoint) {
    const Error error = unconnected ? *unconnected : failure_of(*owned, UCS_ERR_NOT_CONNECTED);
    answer(*owned, error);
    return;
  }
  Pending& transfer = *owned;
  transfer.agent = this;
  lane.pending.push_front(std::move(owned));
  transfer.at = lane.pending.begin();
  lane.worker.add_outstanding(1);
  const std::vector<ucp_rkey_h>& keys = link.keys[layout_index];
  ucp_request_param_t plain{};
  for (const RemoteOp& op : ops) {
    const ucs_status_ptr_t request =
        write ? ucp_put_nbx(link.endpoint, op.local, op.bytes, op.remote, keys[op.region], &plain)
              : ucp_get_nbx(link.endpoint, op.local, op.bytes, op.remote, keys[op.region], &plain);
    if (UCS_PTR_IS_ERR(request)) {
      transfer.error = failure_of(transfer, UCS_PTR_STATUS(request));
      break;
    }
    // Without a callback the request frees itself when it ends; the flush waits for it.
    if (UCS_PTR_IS_PTR(request)) ucp_request_free(request);
  }
  ucp_request_param_t param = callback_for<&Impl::flushed>(transfer);
  const ucs_status_ptr_t request = ucp_ep_flush_nbx(link.endpoint, &param);
  if (!UCS_PTR_IS_PTR(request)) flushed(transfer, UCS_PTR_STATUS(request));
}

void RemoteAgent::Impl::flushed(Pending& transfer, ucs_status_t status) {
  if (status != UCS_OK && !transfer.error) transfer.error = failure_of(transfer, status);
  if (transfer.error) return complete(transfer, *transfer.error);
  const Link& link = transfer.peer->links[transfer.lane->index];
  if (transfer.notification.empty() || !link.endpoint) return notified(transfer, UCS_OK);
  ucp_request_param_t param = callback_for<&Impl::notified>(transfer);
  param.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_AM_SEND_FLAG_EAGER;
  const ucs_status_ptr_t request = ucp_am_send_nbx(link.endpoint, kNotificationId, nullptr, 0,
                                                   transfer.notification.data(), transfer.notification.size(), &param);
  if (!UCS_PTR_IS_PTR(request)) notified(transfer, UCS_PTR_STATUS(request));
}

void RemoteAgent::Impl::notified(Pending& transfer, ucs_status_t status) {
  if (status != UCS_OK ||
      (!transfer.notification.empty() && !transfer.peer->links[transfer.lane->index].endpoint)) {
    return complete(transfer, failure_of(transfer, status));
  }
  complete(transfer, Status{});
}

void RemoteAgent::Impl::complete(Pending& transfer, const Status& status) {
  Lane& lane = *transfer.lane;
  std::unique_ptr<Pending> owned = std::move(*transfer.at);
  lane.pending.erase(transfer.at);
  lane.worker.add_outstanding(-1);
  owned->local.reset();
  answer(*owned, status);
}

void RemoteAgent::Impl::answer(const Pending& transfer, const Status& status) {
  if (transfer.join) part_done(transfer.join, status);
  else transfer.state->complete(status);
}

void RemoteAgent::Impl::part_done(const std::shared_ptr<PartsJoin>& join, const Status& status) {
  std::optional<Error> error;
  {
    std::lock_guard lock(join->mutex);
    if (!status.ok() && !join->error) join->error = status.error();
    if (--join->left > 0) return;
    error = join->error;
  }
  if (error || join->notification.empty()) {
    join->state->complete(error ? Status(*error) : Status{});
    return;
  }
  // Every part's flush has ended: the notification goes out on lane 0, as a transfer with no
  // operations of its own (its flush ends at once).
  auto notice = std::make_shared<Pending>();
  notice->state = join->state;
  notice->peer = join->peer;
  notice->what = join->what;
  notice->notification = join->notification;
  notice->deadline = UcxWorker::Clock::now() + options.transfer_timeout;
  notice->lane = lanes.front().get();
  worker.post([this, notice, index = join->layout_index]() mutable {
    issue(std::make_unique<Pending>(std::move(*notice)), {}, true, index);
  });
}

Error RemoteAgent::Impl::failure_of(const Pending& transfer, ucs_status_t status) {
  const std::optional<Error>& failure = transfer.peer->links[transfer.lane->index].failure;
  if (failure) return Error(failure->code(), transfer.what + ": " + failure->message());
  return make_error(ErrorCode::Io, "{}: UCX {}", transfer.what, ucs_status_string(status));
}

void RemoteAgent::Impl::finish_request(Lane& lane, ucs_status_ptr_t request) {
  if (!UCS_PTR_IS_PTR(request)) return;
  while (ucp_request_check_status(request) == UCS_INPROGRESS) ucp_worker_progress(lane.worker.worker());
  ucp_request_free(request);
}

}  // namespace kvbm
