#include "kvbm/manager/manager_metrics.hpp"

#include <fmt/format.h>

namespace kvbm {
namespace {

// Dynamo's name for a (from, to) copy where it has one, else kvbm's.
std::string transfer_name(bool onboard, Tier from, Tier to) {
  if (!onboard && from == Tier::Device && to == Tier::Host) return "kvbm_offload_blocks_d2h";
  if (!onboard && from == Tier::Host && to == Tier::Disk) return "kvbm_offload_blocks_h2d";
  if (onboard && from == Tier::Host && to == Tier::Device) return "kvbm_onboard_blocks_h2d";
  if (onboard && from == Tier::Disk && to == Tier::Device) return "kvbm_onboard_blocks_d2d";
  return fmt::format("kvbm_{}_blocks_{}_to_{}", onboard ? "onboard" : "offload", to_string(from), to_string(to));
}

void counter(std::string& out, const std::string& name, const std::string& help, double value, const std::string& labels = {}) {
  out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{}{} {}\n", name, help, name, name, labels, value);
}

void gauge(std::string& out, const std::string& name, const std::string& help, double value, const std::string& labels = {}) {
  out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{}{} {}\n", name, help, name, name, labels, value);
}

double share(std::uint64_t part, std::uint64_t whole) { return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole); }

}  // namespace

double ManagerMetrics::host_cache_hit_rate() const { return share(host_hits, looked_up_blocks); }
double ManagerMetrics::disk_cache_hit_rate() const { return share(disk_hits, looked_up_blocks); }

std::string ManagerMetrics::prometheus() const {
  std::string out;
  counter(out, "kvbm_matched_tokens", "Tokens of prefixes found cached in some tier", static_cast<double>(matched_tokens));
  gauge(out, "kvbm_host_cache_hit_rate", "Share of looked-up blocks found in the host tier", host_cache_hit_rate());
  gauge(out, "kvbm_disk_cache_hit_rate", "Share of looked-up blocks found in the disk tier", disk_cache_hit_rate());
  counter(out, "kvbm_lookup_blocks", "Blocks asked for by prefix lookups", static_cast<double>(looked_up_blocks));
  for (const auto& [totals, onboard] : {std::pair{&offloads, false}, std::pair{&onboards, true}}) {
    for (const auto& [pair, t] : *totals) {
      const std::string name = transfer_name(onboard, pair.first, pair.second);
      const std::string labels = fmt::format("{{from=\"{}\",to=\"{}\"}}", to_string(pair.first), to_string(pair.second));
      counter(out, name, "Blocks copied", static_cast<double>(t.blocks));
      counter(out, name + "_bytes", "Bytes copied", static_cast<double>(t.bytes), labels);
      counter(out, name + "_failed", "Blocks whose copy failed (not registered)", static_cast<double>(t.failed_blocks), labels);
      counter(out, name + "_transfers", "Transfers", static_cast<double>(t.transfers), labels);
      counter(out, name + "_seconds", "Seconds from post to completion, summed over transfers", t.seconds, labels);
    }
  }
  counter(out, "kvbm_offload_dropped_blocks", "Write-through copies not made (queue full or no room below)",
          static_cast<double>(offload_dropped_blocks));
  counter(out, "kvbm_disk_admission_refused_blocks", "Blocks kept off the disk tier: looked up too rarely",
          static_cast<double>(disk_admission_refused_blocks));
  counter(out, "kvbm_policy_admission_refused_blocks",
          "Blocks kept off a full lower tier: its policy expects them to be used less than what they would evict",
          static_cast<double>(policy_admission_refused_blocks));
  gauge(out, "kvbm_offload_queue_depth", "Write-through copies waiting or running", static_cast<double>(offload_queue_depth));
  // One family per tier figure, a line per tier (a family's HELP and TYPE appear once).
  const auto per_tier = [&](const char* name, const char* type, const char* help, auto value) {
    if (tiers.empty()) return;
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const auto& [tier, stats] : tiers) {
      out += fmt::format("{}{{tier=\"{}\"}} {}\n", name, to_string(tier), static_cast<double>(value(stats)));
    }
  };
  per_tier("kvbm_tier_blocks", "gauge", "Blocks of the tier", [](const TierPoolStats& s) { return s.capacity; });
  per_tier("kvbm_tier_free_blocks", "gauge", "Blocks never written or freed", [](const TierPoolStats& s) { return s.free; });
  per_tier("kvbm_tier_held_blocks", "gauge", "Blocks in use", [](const TierPoolStats& s) { return s.held; });
  per_tier("kvbm_tier_cached_blocks", "gauge", "Registered blocks no one holds", [](const TierPoolStats& s) { return s.cached; });
  per_tier("kvbm_tier_evictions", "counter", "Blocks evicted", [](const TierPoolStats& s) { return s.evictions; });
  return out;
}

}  // namespace kvbm
