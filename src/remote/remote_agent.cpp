#include "kvbm/remote/remote_agent.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "remote/agent_metadata.hpp"
#include "remote/metadata_mac.hpp"
#include "remote/remote_ops.hpp"
#include "remote/staged_transfer.hpp"
#include "remote/ucx_worker.hpp"

namespace kvbm {
namespace {

constexpr unsigned kNotificationId = 7;  // UCX active message id of a write's notification
// UCX reads a packed remote key without knowing its length: it is copied into a buffer this
// much longer, zero-filled, so that a malformed key read past its end stays in our memory.
constexpr std::size_t kRemoteKeyPadding = 4096;

using remote::AgentMetadata;
using remote::ExportedLayout;
using remote::RemoteOp;
using remote::UcxWorker;

// A UCX registration, or why it failed.
struct Mapping {
  ucp_mem_h handle = nullptr;
  ucs_status_t status = UCS_OK;
  explicit operator bool() const { return status == UCS_OK; }
  ucp_mem_h operator*() const { return handle; }
  [[nodiscard]] ucs_status_t error() const { return status; }
};

struct Export {
  LayoutPtr layout;
  ExportedLayout description;
  std::vector<ucp_mem_h> mappings;
};

// A peer as last imported; its UCX objects are touched only on the progress thread.
struct Peer {
  AgentMetadata metadata;
  ucp_ep_h endpoint = nullptr;
  std::vector<std::vector<ucp_rkey_h>> keys;  // per layout, per region
  std::optional<Error> failure;               // set once the connection broke or was closed
};

// One write or read on the wire: its RMA operations, then a flush of the endpoint (which ends
// when they all have), then the notification if there is one.
struct Pending {
  std::shared_ptr<CompletionState> state;
  std::shared_ptr<Peer> peer;
  LayoutPtr local;  // the memory the operations use stays alive until they end
  std::string what;
  std::string notification;  // encoded; sent once the flush has ended
  UcxWorker::Clock::time_point deadline;
  std::optional<Error> error;
  bool abandoned = false;  // answered when its peer was closed; UCX may still call back
  void* agent = nullptr;                             // the Impl, for UCX callbacks
  std::list<std::unique_ptr<Pending>>::iterator at;  // where it sits in the agent's list
};

std::string encode_notification(const std::string& sender, const std::string& message) {
  std::string bytes(2, '\0');
  const auto size = static_cast<std::uint16_t>(sender.size());
  std::memcpy(bytes.data(), &size, 2);
  return bytes + sender + message;
}

std::optional<RemoteNotification> decode_notification(const void* data, std::size_t length) {
  const auto* bytes = static_cast<const char*>(data);
  if (length < 2) return std::nullopt;
  std::uint16_t name_bytes = 0;
  std::memcpy(&name_bytes, bytes, 2);
  if (name_bytes > kMaxAgentNameBytes || length - 2 < name_bytes) return std::nullopt;
  if (length - 2 - name_bytes > kMaxNotificationBytes) return std::nullopt;
  return RemoteNotification{std::string(bytes + 2, name_bytes), std::string(bytes + 2 + name_bytes, length - 2 - name_bytes)};
}

}  // namespace

struct RemoteAgent::Impl {
  explicit Impl(RemoteAgentOptions options_in)
      : options(std::move(options_in)), abandoned(), worker({options.transports, options.net_devices}) {
    if (options.capabilities.allow_gpu_rdma) check_device_memory_support();
    if (options.stage_remote_device) stager = std::make_unique<remote::Stager>(options.cuda, options.staging_bytes);
    worker.call([this] { register_notification_handler(); });
    worker.set_tick([this](UcxWorker::Clock::time_point now) { expire(now); });
  }

  ~Impl() {
    stager.reset();  // staged transfers finish first: their slices need the worker
    worker.stop([this] {
      for (auto& [name, peer] : peers) close(*peer, make_error(ErrorCode::Cancelled, "the agent is closing"));
      drain();
      for (Export& entry : exports) {
        for (ucp_mem_h mapping : entry.mappings) ucp_mem_unmap(worker.context(), mapping);
      }
    });
  }

  // Direct transfers of device memory hand device pointers to UCX: one without CUDA support
  // would read them as host memory.
  void check_device_memory_support() {
    ucp_context_attr_t attributes{};
    attributes.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
    const ucs_status_t status = ucp_context_query(worker.context(), &attributes);
    if (status != UCS_OK || !(attributes.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA))) {
      throw make_error(ErrorCode::Unsupported,
                       "allow_gpu_rdma: this UCX cannot reach CUDA device memory (stage_remote_device can)");
    }
  }

  // --- progress thread ---------------------------------------------------------------------

  void register_notification_handler() {
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

  void receive(std::optional<RemoteNotification> notification, std::size_t length) {
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

  static void on_endpoint_error(void* arg, ucp_ep_h, ucs_status_t status) {
    auto* peer = static_cast<Peer*>(arg);
    if (!peer->failure) {
      peer->failure = make_error(ErrorCode::Io, "the connection to peer {} failed: {}", printable(peer->metadata.name),
                                 ucs_status_string(status));
    }
  }

  // Runs UCX until `request` (a status pointer) has ended, then frees it.
  void finish_request(ucs_status_ptr_t request) {
    if (!UCS_PTR_IS_PTR(request)) return;
    while (ucp_request_check_status(request) == UCS_INPROGRESS) ucp_worker_progress(worker.worker());
    ucp_request_free(request);
  }

  // Closes a peer's connection at once: its operations still in flight end with an error.
  void close(Peer& peer, const Error& why) {
    if (!peer.failure) peer.failure = why;
    for (auto& keys : peer.keys) {
      for (ucp_rkey_h key : keys) ucp_rkey_destroy(key);
    }
    peer.keys.clear();
    if (!peer.endpoint) return;
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    ucp_ep_h endpoint = std::exchange(peer.endpoint, nullptr);
    finish_request(ucp_ep_close_nbx(endpoint, &param));
    // Where the transport cannot report failures, closing does not end the operations in
    // flight: the endpoint is gone, so they never touch memory again, and are answered now.
    for (auto it = pending.begin(); it != pending.end();) {
      Pending& transfer = **it++;
      if (transfer.peer.get() != &peer) continue;
      transfer.abandoned = true;
      abandoned.push_back(std::move(*transfer.at));
      pending.erase(transfer.at);
      worker.add_outstanding(-1);
      transfer.local.reset();
      transfer.state->complete(failure_of(transfer, UCS_ERR_CANCELED));
    }
  }

  // Waits for every transfer in flight to end (their peers are closed: they end with errors).
  void drain() {
    while (!pending.empty()) ucp_worker_progress(worker.worker());
  }

  void expire(UcxWorker::Clock::time_point now) {
    std::vector<std::shared_ptr<Peer>> late;
    for (const auto& transfer : pending) {
      if (now >= transfer->deadline && transfer->peer->endpoint) late.push_back(transfer->peer);
    }
    for (const auto& peer : late) {
      close(*peer, make_error(ErrorCode::Timeout, "no answer from peer {} within {} ms; its connection is closed",
                              printable(peer->metadata.name), options.transfer_timeout.count()));
    }
  }

  void connect(Peer& peer) {
    ucp_ep_params_t params{};
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                        UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.address = reinterpret_cast<const ucp_address_t*>(peer.metadata.worker_address.data());
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = &Impl::on_endpoint_error;
    params.err_handler.arg = &peer;
    ucs_status_t status = ucp_ep_create(worker.worker(), &params, &peer.endpoint);
    if (status == UCS_ERR_UNREACHABLE) {
      // Shared-memory transports cannot report a peer's failure: without that, a dead peer is
      // found by the transfer timeout (and the error handler never runs).
      params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
      status = ucp_ep_create(worker.worker(), &params, &peer.endpoint);
    }
    if (status != UCS_OK) {
      peer.endpoint = nullptr;
      throw make_error(ErrorCode::InvalidArgument, "cannot connect to peer {}: UCX {}", printable(peer.metadata.name),
                       ucs_status_string(status));
    }
    for (const ExportedLayout& layout : peer.metadata.layouts) {
      peer.keys.emplace_back();
      for (std::size_t r = 0; r < layout.regions.size(); ++r) {
        std::string padded = layout.regions[r].remote_key;
        padded.resize(padded.size() + kRemoteKeyPadding, '\0');
        ucp_rkey_h key = nullptr;
        status = ucp_ep_rkey_unpack(peer.endpoint, padded.data(), &key);
        if (status != UCS_OK) {
          const Error error = make_error(ErrorCode::InvalidArgument, "peer {}: remote key of region {} of layout {}: UCX {}",
                                         printable(peer.metadata.name), r, layout.info.id, ucs_status_string(status));
          close(peer, error);
          throw error;
        }
        peer.keys.back().push_back(key);
      }
    }
  }

  void complete(Pending& transfer, const Status& status) {
    std::unique_ptr<Pending> owned = std::move(*transfer.at);
    pending.erase(transfer.at);
    worker.add_outstanding(-1);
    owned->local.reset();
    owned->state->complete(status);
  }

  [[nodiscard]] static Error failure_of(const Pending& transfer, ucs_status_t status) {
    if (transfer.peer->failure) {
      return Error(transfer.peer->failure->code(), transfer.what + ": " + transfer.peer->failure->message());
    }
    return make_error(ErrorCode::Io, "{}: UCX {}", transfer.what, ucs_status_string(status));
  }

  // A request parameter whose callback hands `transfer` to `next` once UCX is done.
  template <void (Impl::*next)(Pending&, ucs_status_t)>
  static ucp_request_param_t callback_for(Pending& transfer) {
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    param.user_data = &transfer;
    param.cb.send = [](void* request, ucs_status_t status, void* user) {
      ucp_request_free(request);
      auto& transfer = *static_cast<Pending*>(user);
      if (!transfer.abandoned) (static_cast<Impl*>(transfer.agent)->*next)(transfer, status);
    };
    return param;
  }

  // Issues a transfer's operations and the flush that ends it.
  void issue(std::unique_ptr<Pending> owned, const std::vector<RemoteOp>& ops, bool write,
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

  // The flush ended: every operation before it has (or the connection broke).
  void flushed(Pending& transfer, ucs_status_t status) {
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

  void notified(Pending& transfer, ucs_status_t status) {
    if (status != UCS_OK || (!transfer.notification.empty() && !transfer.peer->endpoint)) {
      return complete(transfer, failure_of(transfer, status));
    }
    complete(transfer, Status{});
  }

  // Registers [address, address + length) with UCX, or allocates that much (shared memory where
  // UCX can: peers on this host then copy into it without a system call) when address is null.
  Mapping map(void* address, std::size_t length) {
    ucp_mem_map_params_t params{};
    params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
    params.address = address;
    params.length = length;
    params.flags = address ? 0 : UCP_MEM_MAP_ALLOCATE;
    ucp_mem_h mapping = nullptr;
    const ucs_status_t status = ucp_mem_map(worker.context(), &params, &mapping);
    if (status != UCS_OK) return Mapping{nullptr, status};
    return Mapping{mapping, UCS_OK};
  }

  void unmap(const std::vector<ucp_mem_h>& mappings) {
    for (ucp_mem_h mapping : mappings) ucp_mem_unmap(worker.context(), mapping);
  }

  // Describes an exported layout (its regions mapped by `mappings`, in order) for peers.
  std::uint32_t export_mapped(const LayoutPtr& layout, std::vector<ucp_mem_h> mappings) {
    Export entry{layout, {}, std::move(mappings)};
    entry.description.info = {0, layout->config(), layout->form(), layout->order(), layout->kind()};
    entry.description.base_offset = layout->base_offset();
    worker.call([&] {
      for (std::size_t r = 0; r < entry.mappings.size(); ++r) {
        void* key = nullptr;
        std::size_t key_bytes = 0;
        const ucs_status_t status = ucp_rkey_pack(worker.context(), entry.mappings[r], &key, &key_bytes);
        if (status != UCS_OK) {
          unmap(entry.mappings);
          remote::throw_ucx(status, "packing a remote key");
        }
        const Region& region = *layout->regions()[r];
        entry.description.regions.push_back({reinterpret_cast<std::uint64_t>(region.data()), region.size(),
                                             std::string(static_cast<const char*>(key), key_bytes)});
        ucp_rkey_buffer_release(key);
      }
    });
    std::lock_guard lock(mutex);
    entry.description.info.id = static_cast<std::uint32_t>(exports.size());
    exports.push_back(std::move(entry));
    return exports.back().description.info.id;
  }

  // --- caller threads ----------------------------------------------------------------------

  std::shared_ptr<Peer> find_peer(const std::string& name) const {
    std::lock_guard lock(mutex);
    const auto it = peers.find(name);
    if (it == peers.end()) throw make_error(ErrorCode::InvalidArgument, "no peer named {} was imported", printable(name));
    return it->second;
  }

  static std::uint32_t layout_index(const Peer& peer, std::uint32_t id) {
    const auto& layouts = peer.metadata.layouts;
    const auto it = std::find_if(layouts.begin(), layouts.end(),
                                 [&](const ExportedLayout& layout) { return layout.info.id == id; });
    if (it == layouts.end()) {
      throw make_error(ErrorCode::InvalidArgument, "peer {} exported no layout {}", printable(peer.metadata.name), id);
    }
    return static_cast<std::uint32_t>(it - layouts.begin());
  }

  TransferHandle start(const LayoutPtr& local, const std::string& peer_name, std::uint32_t id,
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

  // Device memory without GPU RDMA, through pinned staging (the checks above have passed).
  TransferHandle stage(const LayoutPtr& local, const std::string& peer, std::uint32_t id,
                       std::span<const BlockPair> pairs, bool write, std::string notification) {
    return stager->start(local, {pairs.begin(), pairs.end()}, write,
                         [this, peer, id, write, notification](const LayoutPtr& staging,
                                                               std::span<const BlockPair> slice, bool last) {
                           return start(staging, peer, id, slice, write, last ? notification : std::string());
                         });
  }

  TransferPlan plan(StorageKind local, StorageKind remote_kind, bool local_is_source) const {
    if (local.is_device() && remote_kind.is_host() && stager && !options.capabilities.allow_gpu_rdma) {
      return local_is_source ? TransferPlan{TwoHopPlan{TransferStrategy::CudaAsyncD2H, StorageKind::pinned(),
                                                       TransferStrategy::NixlWrite}}
                             : TransferPlan{TwoHopPlan{TransferStrategy::NixlReadFlipped, StorageKind::pinned(),
                                                       TransferStrategy::CudaAsyncH2D}};
    }
    return local_is_source ? select_strategy(local, true, remote_kind, false, options.capabilities)
                           : select_strategy(remote_kind, false, local, true, options.capabilities);
  }

  RemoteAgentOptions options;
  // Transfers answered when their peer was closed, kept for the callbacks UCX may still make,
  // up to the destruction of its worker: declared before the worker, so they outlive it.
  std::vector<std::unique_ptr<Pending>> abandoned;
  UcxWorker worker;
  std::unique_ptr<remote::Stager> stager;  // with stage_remote_device
  mutable std::mutex mutex;  // exports, peers
  std::vector<Export> exports;
  std::map<std::string, std::shared_ptr<Peer>> peers;
  std::list<std::unique_ptr<Pending>> pending;  // progress thread only
  std::mutex notifications_mutex;
  std::condition_variable notification_arrived;
  std::deque<RemoteNotification> notifications;
};

RemoteAgent::RemoteAgent(RemoteAgentOptions options) {
  remote::check_agent_name(options.name);
  if (options.transfer_timeout.count() <= 0) {
    throw make_error(ErrorCode::InvalidArgument, "transfer_timeout of {} ms (must be positive)",
                     options.transfer_timeout.count());
  }
  if (options.transports.empty()) throw make_error(ErrorCode::InvalidArgument, "no UCX transports named");
  impl_ = std::make_unique<Impl>(std::move(options));
}

RemoteAgent::~RemoteAgent() = default;

const std::string& RemoteAgent::name() const { return impl_->options.name; }

std::uint32_t RemoteAgent::export_layout(const LayoutPtr& layout) {
  if (!layout) throw make_error(ErrorCode::InvalidArgument, "no layout to export");
  const StorageKind kind = layout->kind();
  if (kind.is_disk() || (kind.is_device() && !impl_->options.capabilities.allow_gpu_rdma)) {
    throw make_error(ErrorCode::InvalidArgument, "a {} layout cannot be exported{}", kind.to_string(),
                     kind.is_device() ? " without GPU RDMA" : "");
  }
  std::vector<ucp_mem_h> mappings;
  impl_->worker.call([&] {
    for (const RegionPtr& region : layout->regions()) {
      const auto mapping = impl_->map(region->data(), region->size());
      if (!mapping) {
        impl_->unmap(mappings);
        remote::throw_ucx(mapping.error(), "registering " + region->describe());
      }
      mappings.push_back(*mapping);
    }
  });
  return impl_->export_mapped(layout, std::move(mappings));
}

std::pair<LayoutPtr, std::uint32_t> RemoteAgent::allocate_exported(const LayoutConfig& config, LayoutForm form,
                                                                   LayerOrder order) {
  config.validate();
  const bool contiguous = form == LayoutForm::FullyContiguous;
  const std::size_t bytes = contiguous ? Layout::required_bytes_fully_contiguous(config, StorageKind::system())
                                       : Layout::required_bytes_per_layer(config, StorageKind::system());
  std::vector<ucp_mem_h> mappings;
  std::vector<RegionPtr> regions;
  impl_->worker.call([&] {
    for (std::size_t r = 0; r < (contiguous ? 1 : config.num_layers); ++r) {
      const auto mapping = impl_->map(nullptr, bytes);
      if (!mapping) {
        impl_->unmap(mappings);
        remote::throw_ucx(mapping.error(), fmt::format("allocating {} bytes", bytes));
      }
      mappings.push_back(*mapping);
      ucp_mem_attr_t attributes{};
      attributes.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS;
      (void)ucp_mem_query(*mapping, &attributes);
      regions.push_back(Region::register_memory(attributes.address, bytes, StorageKind::system()));
    }
  });
  LayoutPtr layout = contiguous ? Layout::fully_contiguous(config, regions.front())
                                : Layout::layer_separate(config, std::move(regions), order);
  const std::uint32_t id = impl_->export_mapped(layout, std::move(mappings));
  return {std::move(layout), id};
}

std::string RemoteAgent::metadata() const {
  AgentMetadata metadata{impl_->options.name, impl_->worker.address(), {}};
  std::lock_guard lock(impl_->mutex);
  for (const Export& entry : impl_->exports) metadata.layouts.push_back(entry.description);
  const std::string encoded = remote::encode(metadata);
  return impl_->options.metadata_key.empty() ? encoded : remote::sign_metadata(impl_->options.metadata_key, encoded);
}

std::string RemoteAgent::import_peer(std::string_view bytes) {
  auto peer = std::make_shared<Peer>();
  if (!impl_->options.metadata_key.empty()) bytes = remote::verify_metadata(impl_->options.metadata_key, bytes);
  peer->metadata = remote::decode(bytes);
  const std::string name = peer->metadata.name;
  if (name == impl_->options.name) {
    throw make_error(ErrorCode::InvalidArgument, "peer metadata names this agent itself ({})", printable(name));
  }
  impl_->worker.call([&] {
    impl_->connect(*peer);
    std::shared_ptr<Peer> replaced;
    {
      std::lock_guard lock(impl_->mutex);
      replaced = std::exchange(impl_->peers[name], peer);
    }
    if (replaced) {
      impl_->close(*replaced, make_error(ErrorCode::Cancelled, "peer {} was imported again", printable(name)));
    }
  });
  return name;
}

std::vector<RemoteLayoutInfo> RemoteAgent::peer_layouts(const std::string& peer) const {
  std::vector<RemoteLayoutInfo> layouts;
  for (const ExportedLayout& layout : impl_->find_peer(peer)->metadata.layouts) layouts.push_back(layout.info);
  return layouts;
}

TransferPlan RemoteAgent::plan(StorageKind local, StorageKind remote, bool local_is_source) const {
  return impl_->plan(local, remote, local_is_source);
}

TransferHandle RemoteAgent::write(const LayoutPtr& local, const std::string& peer, std::uint32_t remote_layout,
                                  std::span<const BlockPair> pairs, std::string notification) {
  return impl_->start(local, peer, remote_layout, pairs, true, std::move(notification));
}

TransferHandle RemoteAgent::read(const std::string& peer, std::uint32_t remote_layout, const LayoutPtr& local,
                                 std::span<const BlockPair> pairs) {
  return impl_->start(local, peer, remote_layout, pairs, false, {});
}

std::optional<RemoteNotification> RemoteAgent::wait_notification(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->notifications_mutex);
  if (!impl_->notification_arrived.wait_for(lock, timeout, [&] { return !impl_->notifications.empty(); })) {
    return std::nullopt;
  }
  RemoteNotification notification = std::move(impl_->notifications.front());
  impl_->notifications.pop_front();
  return notification;
}

}  // namespace kvbm
