#include "kvbm/transfer/strategy.hpp"

#include <nlohmann/json.hpp>

#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {

std::string to_string(TransferStrategy strategy) {
  switch (strategy) {
    case TransferStrategy::Memcpy: return "Memcpy";
    case TransferStrategy::CudaAsyncH2D: return "CudaAsyncH2D";
    case TransferStrategy::CudaAsyncD2H: return "CudaAsyncD2H";
    case TransferStrategy::CudaAsyncD2D: return "CudaAsyncD2D";
    case TransferStrategy::CudaBlockingH2D: return "CudaBlockingH2D";
    case TransferStrategy::CudaBlockingD2H: return "CudaBlockingD2H";
    case TransferStrategy::NixlRead: return "NixlRead";
    case TransferStrategy::NixlWrite: return "NixlWrite";
    case TransferStrategy::NixlWriteFlipped: return "NixlWriteFlipped";
    case TransferStrategy::NixlReadFlipped: return "NixlReadFlipped";
    case TransferStrategy::Invalid: return "Invalid";
  }
  return "Invalid";
}

std::string to_string(const TransferPlan& plan) {
  if (const auto* direct = std::get_if<DirectPlan>(&plan)) return "Direct(" + to_string(direct->strategy) + ")";
  const auto& hop = std::get<TwoHopPlan>(plan);
  return fmt::format("TwoHop({} -> {} -> {})", to_string(hop.first), hop.bounce_location.to_string(),
                     to_string(hop.second));
}

std::string to_json(const TransferPlan& plan) {
  nlohmann::ordered_json json;
  if (const auto* direct = std::get_if<DirectPlan>(&plan)) {
    json = {{"plan", "direct"}, {"strategy", to_string(direct->strategy)}};
  } else {
    const auto& hop = std::get<TwoHopPlan>(plan);
    json = {{"plan", "two_hop"},
            {"first", to_string(hop.first)},
            {"bounce", hop.bounce_location.to_string()},
            {"second", to_string(hop.second)}};
  }
  return json.dump();
}

TransferCapabilities TransferCapabilities::with_gds(bool enabled) const {
  TransferCapabilities copy = *this;
  copy.allow_gds = enabled;
  return copy;
}

TransferCapabilities TransferCapabilities::with_gpu_rdma(bool enabled) const {
  TransferCapabilities copy = *this;
  copy.allow_gpu_rdma = enabled;
  return copy;
}

TransferPlan select_direct_strategy(StorageKind src, StorageKind dst, bool dst_is_remote,
                                    const TransferCapabilities& capabilities) {
  using T = StorageKind::Type;
  using S = TransferStrategy;
  if (dst_is_remote) return select_remote_strategy(src, capabilities);

  const auto direct = [](S strategy) -> TransferPlan { return DirectPlan{strategy}; };
  const auto two_hop = [](S first, S second) -> TransferPlan {
    return TwoHopPlan{first, StorageKind::pinned(), second};
  };
  const bool src_host = src.is_host();
  const bool dst_host = dst.is_host();

  if (src_host && dst_host) return direct(S::Memcpy);
  if (src_host && dst.is_device()) return direct(src.type() == T::Pinned ? S::CudaAsyncH2D : S::CudaBlockingH2D);
  if (src.is_device() && dst_host) return direct(dst.type() == T::Pinned ? S::CudaAsyncD2H : S::CudaBlockingD2H);
  if (src.is_device() && dst.is_device()) return direct(S::CudaAsyncD2D);
  if (src_host && dst.is_disk()) return direct(S::NixlWrite);
  if (src.is_disk() && dst_host) return direct(S::NixlReadFlipped);
  // Disk <-> disk has no direct path: read into the bounce buffer, write out of it.
  if (src.is_disk() && dst.is_disk()) return two_hop(S::NixlReadFlipped, S::NixlWrite);
  if (src.is_device() && dst.is_disk()) {
    return capabilities.allows_device_disk_direct() ? direct(S::NixlWrite) : two_hop(S::CudaAsyncD2H, S::NixlWrite);
  }
  // Disk -> device.
  return capabilities.allows_device_disk_direct() ? direct(S::NixlRead) : two_hop(S::NixlReadFlipped, S::CudaAsyncH2D);
}

TransferPlan select_remote_strategy(StorageKind src, const TransferCapabilities& capabilities) {
  using S = TransferStrategy;
  if (src.is_host()) return DirectPlan{S::NixlWrite};
  if (src.is_device()) {
    if (capabilities.allows_device_remote_direct()) return DirectPlan{S::NixlWrite};
    return TwoHopPlan{S::CudaAsyncD2H, StorageKind::pinned(), S::NixlWrite};
  }
  // Disk -> remote always stages through host.
  return TwoHopPlan{S::NixlWrite, StorageKind::pinned(), S::NixlWrite};
}

TransferPlan select_remote_strategy_v2(StorageKind src, bool src_is_local, StorageKind dst, bool dst_is_local,
                                       const TransferCapabilities& capabilities) {
  if (src.is_disk() || dst.is_disk()) {
    throw make_error(ErrorCode::Unsupported,
                     "remote transfer {} -> {}: neither local nor remote disk transfers are supported remotely",
                     src.to_string(), dst.to_string());
  }
  if (!capabilities.allow_gpu_rdma && (src.is_device() || dst.is_device())) {
    throw make_error(ErrorCode::Unsupported,
                     "remote transfer {} -> {}: GPU RDMA is disabled and this transfer requires it",
                     src.to_string(), dst.to_string());
  }
  if (src_is_local && !dst_is_local) return DirectPlan{TransferStrategy::NixlWrite};
  if (dst_is_local && !src_is_local) return DirectPlan{TransferStrategy::NixlReadFlipped};
  throw make_error(ErrorCode::InvalidArgument,
                   "select_remote_strategy_v2 needs exactly one remote side (src local={}, dst local={})",
                   src_is_local, dst_is_local);
}

TransferPlan select_strategy(StorageKind src, bool src_is_local, StorageKind dst, bool dst_is_local,
                             const TransferCapabilities& capabilities) {
  if (!src_is_local && !dst_is_local) {
    throw make_error(ErrorCode::Unsupported, "transfer {} -> {}: both source and destination are remote",
                     src.to_string(), dst.to_string());
  }
  if (src_is_local && dst_is_local) return select_direct_strategy(src, dst, false, capabilities);
  return select_remote_strategy_v2(src, src_is_local, dst, dst_is_local, capabilities);
}

TransferPlan execution_plan(const TransferPlan& selected) {
  using S = TransferStrategy;
  if (const auto* direct = std::get_if<DirectPlan>(&selected)) {
    if (direct->strategy == S::CudaBlockingH2D) return TwoHopPlan{S::Memcpy, StorageKind::pinned(), S::CudaAsyncH2D};
    if (direct->strategy == S::CudaBlockingD2H) return TwoHopPlan{S::CudaAsyncD2H, StorageKind::pinned(), S::Memcpy};
  }
  return selected;
}

}  // namespace kvbm
