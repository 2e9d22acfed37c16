#pragma once
// Which unheld block a tier gives up when it needs room. A pool tells its policy when a block
// becomes a candidate (registered and released by its last holder) and when it stops being one
// (held again, or dropped); the policy picks among the candidates. Lower priority goes first;
// how the policy orders blocks of one priority is its own. Policies are called under the pool's
// lock: they need no locking of their own and must not call back into the pool.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "kvbm/manager/sequence_hash.hpp"

namespace kvbm {

using BlockId = std::size_t;

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  // `block`, registered as `hash`, is held by no one: a candidate from now on.
  virtual void add(BlockId block, SequenceHash hash, int priority) = 0;
  // `block` has stopped being a candidate (held again, or evicted).
  virtual void remove(BlockId block) = 0;
  // The next candidate to evict, or nullopt when there is none. The pool then calls remove().
  [[nodiscard]] virtual std::optional<BlockId> victim() const = 0;
  // `hash` was asked for (found or not): frequency-aware policies count it.
  virtual void on_lookup(SequenceHash hash) { (void)hash; }
  [[nodiscard]] virtual std::string_view name() const = 0;
};

enum class EvictionPolicyKind {
  Lru,        // least recently released first
  Frequency,  // blocks asked for least often first, least recently released among equals
};
[[nodiscard]] std::string_view to_string(EvictionPolicyKind kind) noexcept;
[[nodiscard]] std::optional<EvictionPolicyKind> parse_eviction_policy(std::string_view name) noexcept;

[[nodiscard]] std::unique_ptr<EvictionPolicy> make_lru_policy();
// Counts how often each hash is asked for (at most `tracked_hashes` counts are kept, the
// coldest forgotten first) and halves every count each `half_life` lookups, so that a block
// popular long ago does not stay forever.
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_frequency_policy(std::size_t tracked_hashes = std::size_t{1} << 20,
                                                                    std::uint64_t half_life = std::uint64_t{1} << 16);
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_eviction_policy(EvictionPolicyKind kind);

}  // namespace kvbm
