#pragma once
// How often each sequence hash was asked for, with decay: every count halves each `half_life`
// lookups (so yesterday's favourite ages out) and at most `tracked` hashes are counted (the
// coldest forgotten first). Not thread-safe: its owner locks.
#include <algorithm>
#include <cstdint>
#include <unordered_map>

#include "kvbm/manager/sequence_hash.hpp"

namespace kvbm {

class DecayingCounts {
 public:
  DecayingCounts(std::size_t tracked, std::uint64_t half_life)
      : tracked_(std::max<std::size_t>(1, tracked)), half_life_(std::max<std::uint64_t>(1, half_life)) {}

  // Counts one lookup of `hash`. Returns true when the counts were halved (or forgotten) by it.
  bool count(SequenceHash hash) {
    ++counts_[hash];
    bool changed = false;
    if (++lookups_ % half_life_ == 0) {
      halve();
      changed = true;
    }
    if (counts_.size() > tracked_) {
      const std::size_t before = counts_.size();
      std::erase_if(counts_, [](const auto& entry) { return entry.second <= 1; });
      if (counts_.size() == before) halve();
      changed = true;
    }
    return changed;
  }

  [[nodiscard]] std::uint32_t get(SequenceHash hash) const {
    const auto found = counts_.find(hash);
    return found == counts_.end() ? 0 : found->second;
  }

 private:
  void halve() {
    for (auto it = counts_.begin(); it != counts_.end();) {
      it->second /= 2;
      it = it->second == 0 ? counts_.erase(it) : std::next(it);
    }
  }

  const std::size_t tracked_;
  const std::uint64_t half_life_;
  std::unordered_map<SequenceHash, std::uint32_t> counts_;
  std::uint64_t lookups_ = 0;
};

}  // namespace kvbm
