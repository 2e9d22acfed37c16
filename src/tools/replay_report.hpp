#pragma once
// `kvbm replay`'s comparison of policies: one table row per run, and the same as an SVG plot.
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvbm::tools {

// Each run is replay's JSON object of one policy (policy, hits, misses, prefill_tokens_saved,
// offline_bound when sequential, wall_seconds).
void print_policy_table(std::ostream& out, const std::vector<nlohmann::ordered_json>& runs);
// Two panels: hits per tier stacked, by policy; and with --sequential each policy's top-tier
// share of Belady's bound. Throws Io naming the file when it cannot be written.
void write_policy_plot(const std::string& path, const std::string& title, const std::vector<nlohmann::ordered_json>& runs);

}  // namespace kvbm::tools
