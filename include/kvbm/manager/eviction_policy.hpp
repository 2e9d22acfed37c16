#pragma once
// Which unheld block a tier gives up when it needs room, and which blocks it takes in. A pool
// tells its policy when a block becomes a candidate (registered and released by its last holder)
// and when it stops being one (held again, or evicted); the policy picks among the candidates.
// Lower priority goes first; how the policy orders blocks of one priority is its own. Policies
// are called under the pool's lock: they need no locking of their own and must not call back
// into the pool. Each pool has its own policy object: a host tier and a disk tier keep apart books.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

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
  // The next candidate to evict, or nullopt when there is none. The pool then calls remove()
  // and evicted(). Not const: a policy may move blocks between its queues while it looks.
  [[nodiscard]] virtual std::optional<BlockId> victim() = 0;
  // `hash` was asked for (found or not): frequency-aware policies count it.
  virtual void on_lookup(SequenceHash hash) { (void)hash; }
  // A whole request's hashes, in order (each extends the one before it), before its lookups:
  // what prefix-aware policies learn the tree from, and sketches count.
  virtual void on_request(std::span<const SequenceHash> hashes) { (void)hashes; }
  // `block` became visible as `hash` (held by its writer: not yet a candidate).
  virtual void on_register(BlockId block, SequenceHash hash) { (void)block, (void)hash; }
  // `block` was evicted: unregistered, its hash free to name another block.
  virtual void on_evict(BlockId block) { (void)block; }
  // Whether a block `hash` may enter a full tier, taking the place of victim(): admission
  // policies say no when it is expected to be used less often than the block it would evict.
  [[nodiscard]] virtual bool admit(SequenceHash hash) { return (void)hash, true; }
  [[nodiscard]] virtual std::string_view name() const = 0;
};

enum class EvictionPolicyKind {
  Lru,              // least recently released first
  Frequency,        // blocks asked for least often first, least recently released among equals
  Prefix,           // leaves of the prefix tree first, least recently released among them
  TinyLfu,          // W-TinyLFU: a small LRU window, a segmented main area, admission by a sketch
  S3Fifo,           // S3-FIFO: a small probation FIFO, a main FIFO with reinsertion, a ghost list
  PrefixFrequency,  // leaves first, ordered by decayed counts of every request's blocks
};
[[nodiscard]] std::string_view to_string(EvictionPolicyKind kind) noexcept;
[[nodiscard]] std::optional<EvictionPolicyKind> parse_eviction_policy(std::string_view name) noexcept;
// Every kind, in the order `kvbm replay --policy all` shows them.
[[nodiscard]] std::vector<EvictionPolicyKind> all_eviction_policies();
// "lru, frequency, ...": for messages that list the choices.
[[nodiscard]] std::string eviction_policy_names();

[[nodiscard]] std::unique_ptr<EvictionPolicy> make_lru_policy();
// Counts how often each hash is asked for (at most `tracked_hashes` counts are kept, the
// coldest forgotten first) and halves every count each `half_life` lookups, so that a block
// popular long ago does not stay forever.
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_frequency_policy(std::size_t tracked_hashes = std::size_t{1} << 20,
                                                                    std::uint64_t half_life = std::uint64_t{1} << 16);
// A cached block is never evicted while a block that extends it is cached and another choice
// exists: a cached prefix loses its tail, never its middle. Parents are learned from on_request.
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_prefix_policy();
// W-TinyLFU as in Caffeine, for a tier of `capacity` blocks: new blocks enter a window (1%),
// then duel for the main area against its least recent probation block, by a count-min
// sketch's estimate of how often each was requested (4-bit counters halved every 10 x capacity
// requests' blocks). admit() asks the same question for blocks coming from the tier above.
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_tinylfu_policy(std::size_t capacity);
// S3-FIFO (Yang et al., SOSP 2023) for a tier of `capacity` blocks: new blocks enter a small
// FIFO (10%); those used again there move to the main FIFO, the rest leave, remembered in a
// ghost list; a ghost that comes back goes straight to main. Main reinserts blocks used since
// they last passed.
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_s3fifo_policy(std::size_t capacity);
// Leaves of the prefix tree first (as make_prefix_policy), ordered by how often each block was
// requested, every request's every block counted, each count decaying by half every
// `half_life_requests` requests. It admits every block (see docs/manager.md for why).
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_prefix_frequency_policy(double half_life_requests = 1000);
// The policy of `kind` for a tier of `capacity` blocks.
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_eviction_policy(EvictionPolicyKind kind, std::size_t capacity);
// The policy a block manager gives a tier: make_eviction_policy's, except that prefix-frequency
// ranks by frequency in the top tier alone and is prefix (leaves first, by recency) below it.
// A lower tier serves what fell out of the tiers above; ranked by frequency, it held copies of
// what the top tier kept, and missed three times as often as LRU on the agentic workload.
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_tier_policy(EvictionPolicyKind kind, std::size_t capacity, bool top);

}  // namespace kvbm
