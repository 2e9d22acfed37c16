#pragma once
// Builds a kvbm::Error with a fmt-formatted message, for the library's own code (the public
// headers stay free of fmt): throw make_error(ErrorCode::Io, "open {}: {}", path, reason);
#include <fmt/format.h>

#include "kvbm/common/error.hpp"

namespace kvbm {

template <typename... Args>
[[nodiscard]] Error make_error(ErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
  return Error(code, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace kvbm
