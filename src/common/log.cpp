#include "kvbm/common/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "kvbm/common/settings.hpp"

namespace kvbm {

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto made = spdlog::stderr_color_mt("kvbm");
    made->set_pattern("[%H:%M:%S.%e] [kvbm] [%^%l%$] %v");
    made->set_level(spdlog::level::from_str(settings::log_level()));
    return made;
  }();
  return *logger;
}

}  // namespace kvbm
