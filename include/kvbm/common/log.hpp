#pragma once
// kvbm logs to stderr at level info until set_log_level() says otherwise (the CLI sets it from
// KVBM_LOG).
#include <string_view>

namespace kvbm {

// trace, debug, info, warn, error, critical or off; anything else is InvalidArgument naming it.
void set_log_level(std::string_view level);

}  // namespace kvbm
