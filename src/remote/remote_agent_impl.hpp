#pragma once
// The remote agent's inner object, shared by its files: remote_agent.cpp (construction, memory
// exports and the public calls), remote_agent_peers.cpp (importing peers, their endpoints, the
// notifications) and remote_agent_transfers.cpp (planning, issuing and completing transfers).
#include "kvbm/remote/remote_agent.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <span>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "remote/agent_metadata.hpp"
#include "remote/metadata_mac.hpp"
#include "remote/remote_ops.hpp"
#include "remote/staged_transfer.hpp"
#include "remote/ucx_worker.hpp"

namespace kvbm {
namespace remote_agent_parts {

inline constexpr unsigned kNotificationId = 7;  // UCX active message id of a write's notification
// UCX reads a packed remote key without knowing its length: it is copied into a buffer this
// much longer, zero-filled, so that a malformed key read past its end stays in our memory.
inline constexpr std::size_t kRemoteKeyPadding = 4096;

using remote::AgentMetadata;
using remote::ExportedLayout;
using remote::RemoteOp;
using remote::UcxWorker;

// Lanes a transfer of `bytes` is cut across: one per lane_min_bytes, at most `lanes` and one
// per operation.
[[nodiscard]] inline std::size_t parts_for(const RemoteAgentOptions& options, std::size_t bytes, std::size_t ops) {
  const std::size_t by_bytes = bytes / std::max<std::size_t>(1, options.lane_min_bytes);
  return std::max<std::size_t>(1, std::min({options.lanes, by_bytes, ops}));
}

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

// A peer's connection on one lane, touched only on that lane's thread.
struct Link {
  std::string peer_name;  // for messages, and for the endpoint's error handler
  ucp_ep_h endpoint = nullptr;
  std::vector<std::vector<ucp_rkey_h>> keys;  // per layout, per region
  std::optional<Error> failure;               // set once the connection broke or was closed
};

// A peer as last imported: its metadata, and a link on each lane (made at import, never
// resized: endpoints' error handlers hold their addresses).
struct Peer {
  AgentMetadata metadata;
  std::vector<Link> links;
};

struct Lane;
struct PartsJoin;

// One write or read on the wire, or one lane's part of it: its RMA operations, then a flush of
// the endpoint (which ends when they all have), then the notification if there is one.
struct Pending {
  std::shared_ptr<CompletionState> state;  // answered by this transfer, unless
  std::shared_ptr<PartsJoin> join;         // it is one part of several
  std::shared_ptr<Peer> peer;
  LayoutPtr local;  // the memory the operations use stays alive until they end
  std::string what;
  std::string notification;  // encoded; sent once the flush has ended
  UcxWorker::Clock::time_point deadline;
  std::optional<Error> error;
  bool abandoned = false;  // answered when its peer was closed; UCX may still call back
  void* agent = nullptr;                             // the Impl, for UCX callbacks
  Lane* lane = nullptr;                              // the lane it runs on
  std::list<std::unique_ptr<Pending>>::iterator at;  // where it sits in its lane's list
};

// A transfer cut into parts, one a lane: answered once every part has been, with the first
// error; a write's notification goes out only after every part's flush has ended.
struct PartsJoin {
  std::shared_ptr<CompletionState> state;
  std::shared_ptr<Peer> peer;
  std::string what;
  std::string notification;
  std::uint32_t layout_index = 0;
  std::mutex mutex;
  std::size_t left = 0;
  std::optional<Error> error;
};

// A UCX worker with its thread, and the transfers in flight on it.
struct Lane {
  Lane(const remote::UcxWorkerOptions& options, std::size_t index_in) : worker(options), index(index_in) {}
  // Transfers answered when their peer was closed, kept for the callbacks UCX may still make,
  // up to the destruction of the worker: declared before it, so they outlive it.
  std::vector<std::unique_ptr<Pending>> abandoned;
  UcxWorker worker;
  std::size_t index;
  std::list<std::unique_ptr<Pending>> pending;  // this lane's thread only
};

inline std::string encode_notification(const std::string& sender, const std::string& message) {
  std::string bytes(2, '\0');
  const auto size = static_cast<std::uint16_t>(sender.size());
  std::memcpy(bytes.data(), &size, 2);
  return bytes + sender + message;
}

inline std::optional<RemoteNotification> decode_notification(const void* data, std::size_t length) {
  const auto* bytes = static_cast<const char*>(data);
  if (length < 2) return std::nullopt;
  std::uint16_t name_bytes = 0;
  std::memcpy(&name_bytes, bytes, 2);
  if (name_bytes > kMaxAgentNameBytes || length - 2 < name_bytes) return std::nullopt;
  if (length - 2 - name_bytes > kMaxNotificationBytes) return std::nullopt;
  return RemoteNotification{std::string(bytes + 2, name_bytes), std::string(bytes + 2 + name_bytes, length - 2 - name_bytes)};
}

}  // namespace remote_agent_parts

struct RemoteAgent::Impl {
  using Mapping = remote_agent_parts::Mapping;
  using Export = remote_agent_parts::Export;
  using Peer = remote_agent_parts::Peer;
  using Pending = remote_agent_parts::Pending;
  using Lane = remote_agent_parts::Lane;
  using Link = remote_agent_parts::Link;
  using PartsJoin = remote_agent_parts::PartsJoin;
  using UcxWorker = remote::UcxWorker;
  using RemoteOp = remote::RemoteOp;
  using ExportedLayout = remote::ExportedLayout;
  using AgentMetadata = remote::AgentMetadata;
  explicit Impl(RemoteAgentOptions options_in);
  ~Impl();

  // Direct transfers of device memory hand device pointers to UCX: one without CUDA support
  // would read them as host memory.
  void check_device_memory_support();

  // --- progress thread ---------------------------------------------------------------------

  void register_notification_handler();

  void receive(std::optional<RemoteNotification> notification, std::size_t length);

  static void on_endpoint_error(void* arg, ucp_ep_h, ucs_status_t status);

  // Runs `lane`'s UCX until `request` (a status pointer) has ended, then frees it.
  static void finish_request(Lane& lane, ucs_status_ptr_t request);

  // Closes a peer's link on `lane` at once: its operations still in flight there end with an error.
  void close_link(Lane& lane, Peer& peer, const Error& why);
  // Closes every link of `peer`: here on `lane` (this thread's), posted to the other lanes.
  void close_everywhere(Lane& lane, const std::shared_ptr<Peer>& peer, const Error& why);

  // Waits for every transfer in flight on `lane` to end (its links are closed: they end with errors).
  static void drain(Lane& lane);

  void expire(Lane& lane, UcxWorker::Clock::time_point now);

  // Makes `peer`'s link on `lane` (on that lane's thread): an endpoint and its remote keys.
  void connect(Lane& lane, Peer& peer);

  void complete(Pending& transfer, const Status& status);
  // Answers the transfer, or the join it is one part of.
  void answer(const Pending& transfer, const Status& status);
  // One part of a cut transfer has been answered; the last answers the whole.
  void part_done(const std::shared_ptr<PartsJoin>& join, const Status& status);

  [[nodiscard]] static Error failure_of(const Pending& transfer, ucs_status_t status);

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

  // Issues a transfer's operations and the flush that ends it (on its lane's thread).
  void issue(std::unique_ptr<Pending> owned, std::span<const RemoteOp> ops, bool write,
             std::uint32_t layout_index);

  // The flush ended: every operation before it has (or the connection broke).
  void flushed(Pending& transfer, ucs_status_t status);

  void notified(Pending& transfer, ucs_status_t status);

  // Registers [address, address + length) with UCX, or allocates that much (shared memory where
  // UCX can: peers on this host then copy into it without a system call) when address is null.
  Mapping map(void* address, std::size_t length);

  void unmap(const std::vector<ucp_mem_h>& mappings);

  // Describes an exported layout (its regions mapped by `mappings`, in order) for peers.
  std::uint32_t export_mapped(const LayoutPtr& layout, std::vector<ucp_mem_h> mappings);

  // --- caller threads ----------------------------------------------------------------------

  std::shared_ptr<Peer> find_peer(const std::string& name) const;

  static std::uint32_t layout_index(const Peer& peer, std::uint32_t id);

  TransferHandle start(const LayoutPtr& local, const std::string& peer_name, std::uint32_t id,
                       std::span<const BlockPair> pairs, bool write, std::string notification);

  // Device memory without GPU RDMA, through pinned staging (the checks above have passed).
  TransferHandle stage(const LayoutPtr& local, const std::string& peer, std::uint32_t id,
                       std::span<const BlockPair> pairs, bool write, std::string notification);

  TransferPlan plan(StorageKind local, StorageKind remote_kind, bool local_is_source) const;

  RemoteAgentOptions options;
  std::vector<std::unique_ptr<Lane>> lanes;  // lane 0 first
  UcxWorker& worker;                         // lane 0's: exports, the notification handler, metadata
  std::unique_ptr<remote::Stager> stager;  // with stage_remote_device
  mutable std::mutex mutex;  // exports, peers
  std::vector<Export> exports;
  std::map<std::string, std::shared_ptr<Peer>> peers;
  std::mutex notifications_mutex;
  std::condition_variable notification_arrived;
  std::deque<RemoteNotification> notifications;
};

}  // namespace kvbm
