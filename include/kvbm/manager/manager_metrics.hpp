#pragma once
// What the block manager has done, as counters (Dynamo's names where Dynamo has them), and
// their Prometheus text form.
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "kvbm/manager/tier_pool.hpp"

namespace kvbm {

struct TransferTotals {
  std::uint64_t transfers = 0;
  std::uint64_t blocks = 0;
  std::uint64_t bytes = 0;
  std::uint64_t failed_blocks = 0;
  double seconds = 0;  // summed over transfers, from post to completion
};

struct ManagerMetrics {
  std::uint64_t looked_up_blocks = 0;  // blocks asked for by match()
  std::uint64_t device_hits = 0;
  std::uint64_t host_hits = 0;
  std::uint64_t disk_hits = 0;
  std::uint64_t matched_tokens = 0;
  std::map<std::pair<Tier, Tier>, TransferTotals> offloads;  // write-through, by (from, to)
  std::map<std::pair<Tier, Tier>, TransferTotals> onboards;  // by (from, to)
  std::uint64_t offload_dropped_blocks = 0;                  // the queue was full
  std::uint64_t disk_admission_refused_blocks = 0;           // not looked up often enough for the disk
  std::uint64_t policy_admission_refused_blocks = 0;         // a full tier's policy would not take them
  std::uint64_t offload_queue_depth = 0;                     // waiting or running now
  std::map<Tier, TierPoolStats> tiers;

  // Share of looked-up blocks found in the host (disk) tier and not above it.
  [[nodiscard]] double host_cache_hit_rate() const;
  [[nodiscard]] double disk_cache_hit_rate() const;
  // Prometheus text exposition format (version 0.0.4).
  [[nodiscard]] std::string prometheus() const;
};

}  // namespace kvbm
