#pragma once
// Logging through spdlog. The level comes from KVBM_LOG (trace|debug|info|warn|error|off),
// read once when the logger is first used.
#include <spdlog/spdlog.h>

namespace kvbm {

[[nodiscard]] spdlog::logger& log();

}  // namespace kvbm
