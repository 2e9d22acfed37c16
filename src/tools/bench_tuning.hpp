#pragma once
// `kvbm bench --tune KEY=VALUE`: sets one of the transfer engine's tuning fields, which have no
// environment variable (they are for comparing values, not for deployments).
#include <string>
#include <vector>

#include "kvbm/transfer/transfer_context.hpp"

namespace kvbm::tools {

// Applies "KEY=VALUE"; throws InvalidArgument naming an unknown key or a malformed value, and
// listing the keys.
void apply_tuning(TransferConfig& config, const std::string& assignment);

[[nodiscard]] std::vector<std::string> tuning_keys();

}  // namespace kvbm::tools
