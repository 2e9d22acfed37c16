#pragma once
// The checks a transfer request passes before any byte moves: layouts of one shape, block
// indices in range, no destination named twice, no source byte that is also a destination byte.
#include <cstdint>
#include <span>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"

namespace kvbm {

// Checks a request, throwing an Error that names the offending index, pair position, field or
// region. The constructor checks what concerns the request as a whole: layouts of one shape and,
// where they share a region, every index and no source chunk that is also a destination chunk.
// check_batch then checks the block indices of each batch just before it starts (in range, no
// destination named twice in the request), so a large transfer starts moving after its first
// batch is checked instead of after all of it. A bad pair fails the transfer; batches before it
// may have written their destinations, which a failed transfer never marks valid.
class RequestValidator {
 public:
  RequestValidator(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs);
  // Checks pairs [begin, end) of the request; batches come in order.
  void check_batch(std::size_t begin, std::size_t end);

 private:
  // Throws the error of the first bad pair in [begin, end) (the batch failed its check).
  [[noreturn]] void name_first_bad(std::size_t begin, std::size_t end) const;

  std::size_t src_blocks_;
  std::size_t dst_blocks_;
  std::span<const BlockPair> pairs_;
  std::vector<std::uint64_t> written_;  // one bit per destination block
  std::size_t checked_ = 0;             // pairs [0, checked_) are known good
};

// The whole request at once (for callers that do not run it batch by batch).
void validate_request(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs);

}  // namespace kvbm
