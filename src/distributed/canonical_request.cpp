#include <cstdint>

#include "distributed/request_readers.hpp"

namespace kvbm {
namespace {

class Cursor {
 public:
  explicit Cursor(std::string_view text) : rest_(text) {}

  [[nodiscard]] bool done() const { return rest_.empty(); }

  bool take(std::string_view literal) {
    if (!rest_.starts_with(literal)) return false;
    rest_.remove_prefix(literal.size());
    return true;
  }

  // A pool's name followed by its closing quote (so "Disk" is not read from "Disky").
  std::optional<BlockTransferPool> pool() {
    for (const auto& [name, pool] : {std::pair{"Device\"", BlockTransferPool::Device},
                                    std::pair{"Host\"", BlockTransferPool::Host},
                                    std::pair{"Disk\"", BlockTransferPool::Disk}}) {
      if (take(name)) return pool;
    }
    return std::nullopt;
  }

  // A JSON integer as encode_request writes it: no sign, no leading zero, at most 19 digits
  // (so it fits 64 bits without an overflow check).
  std::optional<std::uint64_t> index() {
    std::size_t digits = 0;
    std::uint64_t value = 0;
    while (digits < rest_.size() && digits < 20 && rest_[digits] >= '0' && rest_[digits] <= '9') {
      value = value * 10 + static_cast<std::uint64_t>(rest_[digits] - '0');
      ++digits;
    }
    if (digits == 0 || digits > 19 || (digits > 1 && rest_[0] == '0')) return std::nullopt;
    rest_.remove_prefix(digits);
    return value;
  }

 private:
  std::string_view rest_;
};

}  // namespace

std::optional<BlockTransferRequest> read_canonical_request(std::string_view text, std::size_t max_block_pairs) {
  Cursor in(text);
  BlockTransferRequest request;
  const auto from = in.take(R"({"from_pool":")") ? in.pool() : std::nullopt;
  const auto to = from && in.take(R"(,"to_pool":")") ? in.pool() : std::nullopt;
  if (!to || !in.take(R"(,"blocks":[)")) return std::nullopt;
  request.from_pool = *from;
  request.to_pool = *to;
  if (!in.take("]")) {
    do {
      const auto src = in.take("[") ? in.index() : std::nullopt;
      const auto dst = src && in.take(",") ? in.index() : std::nullopt;
      if (!dst || !in.take("]")) return std::nullopt;
      if (request.blocks.size() == max_block_pairs) too_many_pairs(max_block_pairs + 1, max_block_pairs);
      request.blocks.emplace_back(*src, *dst);
    } while (in.take(","));
    if (!in.take("]")) return std::nullopt;
  }
  if (!in.take(R"(,"connector_req":null})") || !in.done()) return std::nullopt;
  return request;
}

}  // namespace kvbm
