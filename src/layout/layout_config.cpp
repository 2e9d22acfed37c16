#include "kvbm/layout/layout_config.hpp"

#include "common/checked_math.hpp"
#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {

void LayoutConfig::validate() const {
  const auto require_positive = [](std::size_t value, std::string_view field) {
    if (value == 0) throw make_error(ErrorCode::InvalidArgument, "layout {} must be greater than 0", field);
  };
  require_positive(num_blocks, "num_blocks");
  require_positive(num_layers, "num_layers");
  if (outer_dim != 1 && outer_dim != 2) {
    throw make_error(ErrorCode::InvalidArgument, "layout outer_dim must be 1 or 2 (K/V), got {}", outer_dim);
  }
  require_positive(page_size, "page_size");
  require_positive(inner_dim, "inner_dim");
  require_positive(dtype_bytes, "dtype_bytes");
  (void)chunk_bytes();
  (void)checked_mul(num_chunks(), chunk_bytes(), "layout total bytes (num_chunks x chunk_bytes)");
}

std::size_t LayoutConfig::chunk_bytes() const {
  return checked_mul(checked_mul(page_size, inner_dim, "layout page_size x inner_dim"), dtype_bytes,
                     "layout chunk bytes (page_size x inner_dim x dtype_bytes)");
}

std::size_t LayoutConfig::num_chunks() const {
  return checked_mul(checked_mul(num_blocks, num_layers, "layout num_blocks x num_layers"), outer_dim,
                     "layout num_blocks x num_layers x outer_dim");
}

std::string LayoutConfig::to_string() const {
  return fmt::format("{{num_blocks={}, num_layers={}, outer_dim={}, page_size={}, inner_dim={}, dtype_bytes={}}}",
                     num_blocks, num_layers, outer_dim, page_size, inner_dim, dtype_bytes);
}

}  // namespace kvbm
