#pragma once
// The shape of a model's KV cache: blocks x layers x K/V (outer) x tokens per block (page) x
// elements per token (inner) x bytes per element. One (block, layer, outer) cell is a "chunk".
#include <cstddef>
#include <string>

namespace kvbm {

struct LayoutConfig {
  std::size_t num_blocks = 0;
  std::size_t num_layers = 0;
  std::size_t outer_dim = 2;  // 2 for separate K and V, 1 for fused (e.g. MLA)
  std::size_t page_size = 0;  // tokens per block
  std::size_t inner_dim = 0;  // elements per token (heads x head_dim)
  std::size_t dtype_bytes = 2;

  // Throws InvalidArgument naming the first field that is zero or out of range, and OutOfRange
  // when the chunk or cache size overflows.
  void validate() const;
  // page_size x inner_dim x dtype_bytes.
  [[nodiscard]] std::size_t chunk_bytes() const;
  // num_blocks x num_layers x outer_dim.
  [[nodiscard]] std::size_t num_chunks() const;
  [[nodiscard]] std::string to_string() const;
};

}  // namespace kvbm
