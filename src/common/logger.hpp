#pragma once
// The library's logger (spdlog, to stderr), for its own code; callers set the level through
// kvbm/common/log.hpp.
#include <spdlog/spdlog.h>

#include "common/logger.hpp"

namespace kvbm {

[[nodiscard]] spdlog::logger& log();

}  // namespace kvbm
