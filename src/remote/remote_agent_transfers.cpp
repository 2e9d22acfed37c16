// A remote agent's transfers: the plan (direct, or two hops through pinned staging), the RMA
// operations issued on the progress thread, then a flush and the notification, each transfer
// answered once, by its end, its failure or its deadline.
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
  // Waiters sleep at once: the progress thread moves the bytes, and needs the CPU more than
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
    auto transfer = std::make_unique<Pending>();
    transfer->state = state;
    transfer->peer = peer;
    transfer->local = local;
    transfer->what = fmt::format("remote {} of {} blocks {} peer {} layout {}", write ? "write" : "read",
                                 pairs.size(), write ? "to" : "from", printable(peer_name), id);
    if (!notification.empty()) transfer->notification = encode_notification(options.name, notification);
    transfer->deadline = UcxWorker::Clock::now() + options.transfer_timeout;
    worker.post([this, transfer = std::shared_ptr<Pending>(std::move(transfer)), ops, write, index]() mutable {
      issue(std::make_unique<Pending>(std::move(*transfer)), *ops, write, index);
    });
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

void RemoteAgent::Impl::issue(std::unique_ptr<Pending> owned, const std::vector<RemoteOp>& ops, bool write,
           std::uint32_t layout_index) {
  if (owned->peer->failure || !owned->peer->endpoint) {
    owned->state->complete(failure_of(*owned, UCS_ERR_NOT_CONNECTED));
    return;
  }
  Pending& transfer = *owned;
  transfer.agent = this;
  pending.push_front(std::move(owned));
  transfer.at = pending.begin();
  worker.add_outstanding(1);
  const std::vector<ucp_rkey_h>& keys = transfer.peer->keys[layout_index];
  ucp_request_param_t plain{};
  for (const RemoteOp& op : ops) {
    const ucs_status_ptr_t request =
        write ? ucp_put_nbx(transfer.peer->endpoint, op.local, op.bytes, op.remote, keys[op.region], &plain)
              : ucp_get_nbx(transfer.peer->endpoint, op.local, op.bytes, op.remote, keys[op.region], &plain);
    if (UCS_PTR_IS_ERR(request)) {
      transfer.error = failure_of(transfer, UCS_PTR_STATUS(request));
      break;
    }
    // Without a callback the request frees itself when it ends; the flush waits for it.
    if (UCS_PTR_IS_PTR(request)) ucp_request_free(request);
  }
  ucp_request_param_t param = callback_for<&Impl::flushed>(transfer);
  const ucs_status_ptr_t request = ucp_ep_flush_nbx(transfer.peer->endpoint, &param);
  if (!UCS_PTR_IS_PTR(request)) flushed(transfer, UCS_PTR_STATUS(request));
}

void RemoteAgent::Impl::flushed(Pending& transfer, ucs_status_t status) {
  if (status != UCS_OK && !transfer.error) transfer.error = failure_of(transfer, status);
  if (transfer.error) return complete(transfer, *transfer.error);
  if (transfer.notification.empty() || !transfer.peer->endpoint) return notified(transfer, UCS_OK);
  ucp_request_param_t param = callback_for<&Impl::notified>(transfer);
  param.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_AM_SEND_FLAG_EAGER;
  const ucs_status_ptr_t request = ucp_am_send_nbx(transfer.peer->endpoint, kNotificationId, nullptr, 0,
                                                   transfer.notification.data(), transfer.notification.size(), &param);
  if (!UCS_PTR_IS_PTR(request)) notified(transfer, UCS_PTR_STATUS(request));
}

void RemoteAgent::Impl::notified(Pending& transfer, ucs_status_t status) {
  if (status != UCS_OK || (!transfer.notification.empty() && !transfer.peer->endpoint)) {
    return complete(transfer, failure_of(transfer, status));
  }
  complete(transfer, Status{});
}

void RemoteAgent::Impl::complete(Pending& transfer, const Status& status) {
  std::unique_ptr<Pending> owned = std::move(*transfer.at);
  pending.erase(transfer.at);
  worker.add_outstanding(-1);
  owned->local.reset();
  owned->state->complete(status);
}

void RemoteAgent::Impl::finish_request(ucs_status_ptr_t request) {
  if (!UCS_PTR_IS_PTR(request)) return;
  while (ucp_request_check_status(request) == UCS_INPROGRESS) ucp_worker_progress(worker.worker());
  ucp_request_free(request);
}

}  // namespace kvbm
