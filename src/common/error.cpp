#include "kvbm/common/error.hpp"

#include <cstring>

namespace kvbm {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::InvalidArgument: return "invalid_argument";
    case ErrorCode::OutOfRange: return "out_of_range";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Io: return "io";
    case ErrorCode::Cuda: return "cuda";
    case ErrorCode::Timeout: return "timeout";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::Internal: return "internal";
  }
  return "unknown";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(fmt::format("[{}] {}", to_string(code), message)),
      code_(code),
      message_(message) {}

Error errno_error(std::string_view what, std::string_view path, int err) {
  return make_error(ErrorCode::Io, "{} '{}' failed: {} (errno {})", what, path, std::strerror(err), err);
}

}  // namespace kvbm
