#include "transfer/engine/request_validator.hpp"

#include <algorithm>

#include "common/make_error.hpp"

namespace kvbm {
namespace {

void require_same_shape(const Layout& src, const Layout& dst) {
  const auto mismatch = [](std::string_view field, std::size_t a, std::size_t b) {
    return make_error(ErrorCode::InvalidArgument, "source and destination layouts differ in {}: {} vs {}", field, a, b);
  };
  if (src.chunk_bytes() != dst.chunk_bytes()) throw mismatch("chunk bytes", src.chunk_bytes(), dst.chunk_bytes());
  if (src.config().num_layers != dst.config().num_layers) {
    throw mismatch("num_layers", src.config().num_layers, dst.config().num_layers);
  }
  if (src.config().outer_dim != dst.config().outer_dim) {
    throw mismatch("outer_dim", src.config().outer_dim, dst.config().outer_dim);
  }
}

bool share_a_region(const Layout& src, const Layout& dst) {
  for (const auto& region : src.regions()) {
    if (std::find(dst.regions().begin(), dst.regions().end(), region) != dst.regions().end()) return true;
  }
  return false;
}

// When source and destination share a region, no source byte may also be a destination byte:
// the copy would read what it is overwriting.
void require_no_overlap(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs) {
  struct Range {
    const Region* region;
    std::size_t begin;
    std::size_t end;
    std::size_t block;
  };
  std::vector<Range> written;
  const auto& config = src.config();
  for (const auto& [from, to] : pairs) {
    for (std::size_t layer = 0; layer < config.num_layers; ++layer) {
      for (std::size_t outer = 0; outer < config.outer_dim; ++outer) {
        const ChunkLocation chunk = dst.locate_unchecked(to, layer, outer);
        written.push_back({chunk.region, chunk.offset, chunk.offset + chunk.bytes, to});
      }
    }
  }
  const auto before = [](const Range& a, const Range& b) {
    return a.region != b.region ? std::less<>{}(a.region, b.region) : a.begin < b.begin;
  };
  std::sort(written.begin(), written.end(), before);
  for (const auto& [from, to] : pairs) {
    for (std::size_t layer = 0; layer < config.num_layers; ++layer) {
      for (std::size_t outer = 0; outer < config.outer_dim; ++outer) {
        const ChunkLocation chunk = src.locate_unchecked(from, layer, outer);
        const Range probe{chunk.region, chunk.offset, chunk.offset + chunk.bytes, from};
        // The first written range that starts at or after this one, and the one before it.
        auto it = std::lower_bound(written.begin(), written.end(), probe, before);
        for (auto candidate : {it, it == written.begin() ? written.end() : std::prev(it)}) {
          if (candidate == written.end() || candidate->region != probe.region) continue;
          if (candidate->begin < probe.end && probe.begin < candidate->end) {
            throw make_error(ErrorCode::InvalidArgument,
                             "source block {} overlaps destination block {} in the same region ({})", from,
                             candidate->block, probe.region->describe());
          }
        }
      }
    }
  }
}

}  // namespace

RequestValidator::RequestValidator(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs)
    : src_blocks_(src.config().num_blocks),
      dst_blocks_(dst.config().num_blocks),
      pairs_(pairs),
      written_(dst_blocks_ / 64 + 1, 0) {
  require_same_shape(src, dst);
  if (share_a_region(src, dst)) {
    // Whether a source chunk is written by another batch is a question about the whole request.
    check_batch(0, pairs.size());
    require_no_overlap(src, dst, pairs);
  }
}

void RequestValidator::check_batch(std::size_t begin, std::size_t end) {
  // One pass of compares and bit tests, the failures named after it: a device -> device batch of
  // small blocks is copied in about as long as this loop takes.
  bool all_good = true;
  for (std::size_t i = std::max(begin, checked_); i < end; ++i) {
    const std::size_t from = pairs_[i].first;
    const std::size_t to = pairs_[i].second;
    const bool in_range = from < src_blocks_ && to < dst_blocks_;
    std::uint64_t& word = written_[in_range ? to / 64 : 0];
    const std::uint64_t bit = in_range ? std::uint64_t{1} << (to % 64) : 0;
    all_good &= in_range && (word & bit) == 0;
    word |= bit;
  }
  if (!all_good) name_first_bad(begin, end);
  checked_ = std::max(checked_, end);
}

void RequestValidator::name_first_bad(std::size_t begin, std::size_t end) const {
  std::vector<std::uint64_t> seen(written_.size(), 0);
  for (std::size_t i = 0; i < end; ++i) {
    const std::size_t from = pairs_[i].first;
    const std::size_t to = pairs_[i].second;
    if (i >= begin && from >= src_blocks_) {
      throw make_error(ErrorCode::OutOfRange, "source block index {} (pair {}) is out of range: the source has {} blocks",
                       from, i, src_blocks_);
    }
    if (i >= begin && to >= dst_blocks_) {
      throw make_error(ErrorCode::OutOfRange,
                       "destination block index {} (pair {}) is out of range: the destination has {} blocks", to, i,
                       dst_blocks_);
    }
    if (to >= dst_blocks_) continue;  // an earlier batch's, already refused
    const std::uint64_t bit = std::uint64_t{1} << (to % 64);
    if (seen[to / 64] & bit) {
      const auto first = std::find_if(pairs_.begin(), pairs_.end(), [to](const BlockPair& p) { return p.second == to; });
      throw make_error(ErrorCode::InvalidArgument, "destination block {} is named twice (pairs {} and {})", to,
                       first - pairs_.begin(), i);
    }
    seen[to / 64] |= bit;
  }
  throw make_error(ErrorCode::Internal, "pairs {}-{} failed their check, but no pair is bad", begin, end);
}

void validate_request(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs) {
  RequestValidator(src, dst, pairs).check_batch(0, pairs.size());
}

}  // namespace kvbm
