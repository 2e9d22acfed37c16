#include "remote/quiet_ucx_calls.hpp"

#include <ucs/debug/log_def.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "common/logger.hpp"

namespace kvbm::remote {
namespace {

thread_local bool t_quiet = false;

// UCX calls the handlers pushed on top of its own first; STOP keeps its default from printing.
ucs_log_func_rc_t to_debug_log_when_quiet(const char* file, unsigned line, const char*, ucs_log_level_t,
                                          const ucs_log_component_config_t*, const char* format, va_list ap) {
  if (!t_quiet) return UCS_LOG_FUNC_RC_CONTINUE;
  char text[512];
  va_list copy;
  va_copy(copy, ap);
  std::vsnprintf(text, sizeof text, format, copy);
  va_end(copy);
  log().debug("UCX ({}:{}), in a call whose failure kvbm handles: {}", file, line, text);
  return UCS_LOG_FUNC_RC_STOP;
}

}  // namespace

QuietUcxCalls::QuietUcxCalls() : was_quiet_(t_quiet) {
  static std::once_flag pushed;
  std::call_once(pushed, [] { ucs_log_push_handler(&to_debug_log_when_quiet); });
  t_quiet = true;
}

QuietUcxCalls::~QuietUcxCalls() { t_quiet = was_quiet_; }

}  // namespace kvbm::remote
