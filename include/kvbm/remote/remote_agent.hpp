#pragma once
// Transfers between this process's layouts and another process's, on this host or another,
// over UCX (seed 003's Nixl* plans: NixlWrite pushes local blocks into a peer's memory,
// NixlReadFlipped pulls a peer's blocks into local memory).
//
// Each process makes one agent. It exports the layouts peers may reach (their regions are
// registered with UCX and only those), and hands its metadata (name, worker address, exported
// layouts with their remote keys) to peers through any channel; a peer imports it and can then
// name the exported layouts in write() and read(). Imported metadata is untrusted: it is checked
// in full, and every transfer is checked against the shape it declares before anything moves.
//
//   RemoteAgent prefill({.name = "prefill"}), decode({.name = "decode"});
//   const auto id = decode.export_layout(decode_host_cache);
//   prefill.import_peer(decode.metadata());
//   prefill.write(prefill_host_cache, "decode", id, pairs, "request 7 ready").wait();
//   decode.wait_notification(5s);  // {"prefill", "request 7 ready"}
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "kvbm/transfer/strategy.hpp"
#include "kvbm/transfer/transfer_handle.hpp"

namespace kvbm {

class TransferContext;

struct RemoteAgentOptions {
  // How peers know this agent: 1 to 256 printable bytes, unique among the agents that meet.
  std::string name;
  // UCX transports (UCX_TLS syntax): "tcp", "sm" (shared memory, same host), or a list.
  std::string transports = "tcp";
  // Network devices UCX may listen and connect on: loopback unless told otherwise.
  std::string net_devices = "lo";
  // UCX workers, each with a thread of its own, that a large transfer is cut across (1 to 16):
  // over shared memory each lane's CPU copies its share, over TCP each has a connection. Lane 0
  // also receives, exports and notifies; transfers under lane_min_bytes a lane stay on it.
  std::size_t lanes = 2;
  std::size_t lane_min_bytes = std::size_t{1} << 20;
  // A transfer that has not finished within this time fails with Timeout, and its peer's
  // connection is closed (import the peer's metadata again to reconnect).
  std::chrono::milliseconds transfer_timeout{30000};
  // Received notifications kept until taken; past this, the oldest are dropped (and logged).
  std::size_t max_pending_notifications = 65536;
  // Device memory on a remote transfer: allow_gpu_rdma moves it directly (UCX built with CUDA);
  // stage_remote_device moves it through pinned staging buffers with `cuda` copies.
  TransferCapabilities capabilities{};
  bool stage_remote_device = false;
  std::shared_ptr<TransferContext> cuda{};  // the context that runs the staging copies
  std::size_t staging_bytes = 64ull << 20;  // per staging buffer (two are used in turn)
  // A secret shared by the agents that meet (32 bytes; remote::read_metadata_key reads a key
  // file): metadata() is then signed with it, and import_peer() takes only metadata signed with
  // it, checked before any of it is decoded or reaches UCX. Empty: unsigned metadata.
  std::string metadata_key{};
};

// What a peer exported, as its metadata declares it (checked on import).
struct RemoteLayoutInfo {
  std::uint32_t id = 0;
  LayoutConfig config;
  LayoutForm form = LayoutForm::FullyContiguous;
  LayerOrder order = LayerOrder::BlockContiguous;
  StorageKind kind = StorageKind::system();
};

// A peer's word that its write into this agent's memory has finished. `peer` is the name the
// sender gave: UCX does not authenticate it.
struct RemoteNotification {
  std::string peer;
  std::string message;
};

inline constexpr std::size_t kMaxAgentNameBytes = 256;
inline constexpr std::size_t kMaxNotificationBytes = 4096;

class RemoteAgent {
 public:
  // Throws InvalidArgument naming a bad option, or Unsupported when UCX cannot start with the
  // transports asked for.
  explicit RemoteAgent(RemoteAgentOptions options);
  ~RemoteAgent();
  RemoteAgent(const RemoteAgent&) = delete;
  RemoteAgent& operator=(const RemoteAgent&) = delete;

  [[nodiscard]] const std::string& name() const;

  // Registers the layout's regions for peers to reach and returns the id they name it by.
  // System and Pinned memory; Device memory only with allow_gpu_rdma; never disk.
  [[nodiscard]] std::uint32_t export_layout(const LayoutPtr& layout);
  // Allocates a System layout in memory UCX provides (shared memory where it can: peers on this
  // host then copy into it without a system call) and exports it. The layout must not outlive
  // the agent.
  [[nodiscard]] std::pair<LayoutPtr, std::uint32_t> allocate_exported(const LayoutConfig& config, LayoutForm form,
                                                                      LayerOrder order = LayerOrder::BlockContiguous);
  // This agent's metadata for peers: its name, worker address and exported layouts.
  [[nodiscard]] std::string metadata() const;

  // Imports a peer's metadata (again: replaces what was known of it, and reconnects). Returns
  // the peer's name. Throws InvalidArgument naming what is malformed; nothing changes then.
  std::string import_peer(std::string_view metadata);
  // The layouts a peer exported; throws InvalidArgument for a peer not imported.
  [[nodiscard]] std::vector<RemoteLayoutInfo> peer_layouts(const std::string& peer) const;

  // The plan a transfer between a local layout and a peer's takes (local -> remote when
  // `local_is_source`); throws InvalidArgument when there is none.
  [[nodiscard]] TransferPlan plan(StorageKind local, StorageKind remote, bool local_is_source) const;

  // Pushes local blocks into the peer's layout (pairs: local block, remote block). With a
  // `notification`, the peer receives it once every byte has landed there.
  [[nodiscard]] TransferHandle write(const LayoutPtr& local, const std::string& peer, std::uint32_t remote_layout,
                                     std::span<const BlockPair> pairs, std::string notification = {});
  // Pulls the peer's blocks into a local layout (pairs: remote block, local block).
  [[nodiscard]] TransferHandle read(const std::string& peer, std::uint32_t remote_layout, const LayoutPtr& local,
                                    std::span<const BlockPair> pairs);

  // The oldest notification received, waiting up to `timeout` for one.
  [[nodiscard]] std::optional<RemoteNotification> wait_notification(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
