#pragma once
// Size arithmetic that reports overflow instead of wrapping: layouts multiply user-supplied
// dimensions, and a wrapped product would address the wrong bytes.
#include <cstddef>
#include <string_view>

#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {

[[nodiscard]] inline std::size_t checked_mul(std::size_t a, std::size_t b, std::string_view what) {
  std::size_t result = 0;
  if (__builtin_mul_overflow(a, b, &result)) {
    throw make_error(ErrorCode::OutOfRange, "{} overflows: {} x {} does not fit in 64 bits", what, a, b);
  }
  return result;
}

[[nodiscard]] inline std::size_t checked_add(std::size_t a, std::size_t b, std::string_view what) {
  std::size_t result = 0;
  if (__builtin_add_overflow(a, b, &result)) {
    throw make_error(ErrorCode::OutOfRange, "{} overflows: {} + {} does not fit in 64 bits", what, a, b);
  }
  return result;
}

[[nodiscard]] inline std::size_t round_up(std::size_t value, std::size_t alignment) {
  return checked_add(value, alignment - 1, "alignment") / alignment * alignment;
}

}  // namespace kvbm
