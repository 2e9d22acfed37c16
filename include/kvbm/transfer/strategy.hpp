#pragma once
// How a transfer between two storage locations runs (seed 003). The Nixl* names are kept so
// Dynamo users recognise them; in kvbm they mean "the disk or remote backend".
#include <cstdint>
#include <string>
#include <variant>

#include "kvbm/memory/storage_kind.hpp"

namespace kvbm {

enum class TransferStrategy : std::uint8_t {
  Memcpy,
  CudaAsyncH2D,
  CudaAsyncD2H,
  CudaAsyncD2D,
  CudaBlockingH2D,
  CudaBlockingD2H,
  NixlRead,
  NixlWrite,
  NixlWriteFlipped,
  NixlReadFlipped,
  Invalid,
};

[[nodiscard]] std::string to_string(TransferStrategy strategy);

struct DirectPlan {
  TransferStrategy strategy;
  bool operator==(const DirectPlan&) const = default;
};

struct TwoHopPlan {
  TransferStrategy first;           // src -> bounce
  StorageKind bounce_location;      // always Pinned
  TransferStrategy second;          // bounce -> dst
  bool operator==(const TwoHopPlan&) const = default;
};

using TransferPlan = std::variant<DirectPlan, TwoHopPlan>;

// "Direct(Memcpy)" or "TwoHop(CudaAsyncD2H -> Pinned -> NixlWrite)".
[[nodiscard]] std::string to_string(const TransferPlan& plan);
// {"plan":"direct","strategy":"Memcpy"} or {"plan":"two_hop","first":...,"bounce":...,"second":...}
[[nodiscard]] std::string to_json(const TransferPlan& plan);

struct TransferCapabilities {
  bool allow_gds = false;       // GPUDirect Storage: device <-> disk without a host bounce
  bool allow_gpu_rdma = false;  // device memory straight onto the network

  [[nodiscard]] TransferCapabilities with_gds(bool enabled) const;
  [[nodiscard]] TransferCapabilities with_gpu_rdma(bool enabled) const;
  [[nodiscard]] bool allows_device_disk_direct() const { return allow_gds; }
  [[nodiscard]] bool allows_device_remote_direct() const { return allow_gpu_rdma; }
};

// The seed's rule table for a local source; with dst_is_remote, select_remote_strategy decides.
[[nodiscard]] TransferPlan select_direct_strategy(StorageKind src, StorageKind dst, bool dst_is_remote,
                                                  const TransferCapabilities& capabilities);
// Local source, remote destination (the seed's v1 remote rules).
[[nodiscard]] TransferPlan select_remote_strategy(StorageKind src, const TransferCapabilities& capabilities);
// One side remote (v2 rules): disks and, without GPU RDMA, devices are errors.
[[nodiscard]] TransferPlan select_remote_strategy_v2(StorageKind src, bool src_is_local, StorageKind dst,
                                                     bool dst_is_local, const TransferCapabilities& capabilities);
// The entry point: both local -> the table; one remote -> v2; both remote -> error.
[[nodiscard]] TransferPlan select_strategy(StorageKind src, bool src_is_local, StorageKind dst, bool dst_is_local,
                                           const TransferCapabilities& capabilities);

// The plan kvbm's engine runs for a plan the rules selected. The GPU cannot read pageable host
// memory asynchronously, so the seed's blocking copies run as two hops through pinned memory:
// CudaBlockingH2D as TwoHop(Memcpy -> Pinned -> CudaAsyncH2D), CudaBlockingD2H as
// TwoHop(CudaAsyncD2H -> Pinned -> Memcpy). Every other plan runs as selected.
[[nodiscard]] TransferPlan execution_plan(const TransferPlan& selected);

}  // namespace kvbm
