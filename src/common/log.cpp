#include "common/logger.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <array>

#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto made = spdlog::stderr_color_mt("kvbm");
    made->set_pattern("[%H:%M:%S.%e] [kvbm] [%^%l%$] %v");
    made->set_level(spdlog::level::info);
    return made;
  }();
  return *logger;
}

void set_log_level(std::string_view level) {
  static constexpr std::array kLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(kLevels.begin(), kLevels.end(), level) == kLevels.end()) {
    throw make_error(ErrorCode::InvalidArgument, "'{}' is not a log level (trace, debug, info, warn, error, critical, off)",
                     printable(level));
  }
  log().set_level(spdlog::level::from_str(std::string(level)));
}

}  // namespace kvbm
