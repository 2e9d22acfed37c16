#pragma once
// One tier of the block manager: a layout of N blocks and a registry from sequence hash to
// block. A block is free, held (by one or more BlockHandles, registered or not), or cached
// (registered and held by no one: a candidate for eviction). Only cached blocks are ever
// evicted; a block is registered only after its bytes are in place, by whoever wrote them.
// Thread-safe.
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "kvbm/manager/eviction_policy.hpp"
#include "kvbm/manager/sequence_hash.hpp"

namespace kvbm {

enum class Tier { Device, Host, Disk };
[[nodiscard]] std::string_view to_string(Tier tier) noexcept;

class TierPool;

// A hold on one block of a pool: while any copy of it lives, the block is neither evicted nor
// handed out again. Copies share the hold; the last one releases it.
class BlockHandle {
 public:
  BlockHandle() = default;
  [[nodiscard]] BlockId block() const;
  [[nodiscard]] Tier tier() const;
  // The hash the block was registered as (nullopt while it is not registered).
  [[nodiscard]] std::optional<SequenceHash> hash() const;
  [[nodiscard]] explicit operator bool() const { return hold_ != nullptr; }

  struct Hold;  // defined with the pool

 private:
  friend class TierPool;
  explicit BlockHandle(std::shared_ptr<Hold> hold) : hold_(std::move(hold)) {}
  std::shared_ptr<Hold> hold_;
};

struct TierPoolStats {
  std::size_t capacity = 0;
  std::size_t free = 0;
  std::size_t held = 0;        // blocks with at least one holder
  std::size_t cached = 0;      // registered, unheld: what eviction may take
  std::size_t registered = 0;  // held or cached
  std::uint64_t evictions = 0;
};

class TierPool {
 public:
  // `layout`'s blocks are the pool's. Throws InvalidArgument for a null layout or policy.
  TierPool(Tier tier, LayoutPtr layout, std::unique_ptr<EvictionPolicy> policy);
  ~TierPool();
  TierPool(const TierPool&) = delete;
  TierPool& operator=(const TierPool&) = delete;

  // A hold on the block registered as `hash`, or nullopt when this tier has none (told to the
  // policy as a lookup either way).
  [[nodiscard]] std::optional<BlockHandle> acquire(SequenceHash hash);
  // A request's hashes, in order, told to the policy before the request's lookups (see
  // EvictionPolicy::on_request).
  void note_request(std::span<const SequenceHash> hashes);
  // Whether a block `hash` may come in: always while a block is free, else as the policy's
  // admission says (see EvictionPolicy::admit).
  [[nodiscard]] bool admits(SequenceHash hash);
  // Whether `hash` is registered here (no hold taken, not counted as a lookup).
  [[nodiscard]] bool contains(SequenceHash hash) const;
  // Up to `count` blocks to write into, held and unregistered: free blocks first, then cached
  // ones evicted as the policy says. Fewer (possibly none) when the rest are held.
  [[nodiscard]] std::vector<BlockHandle> allocate(std::size_t count);
  // Makes the held, unregistered block of `handle`, whose bytes are in place, visible as
  // `hash` with `priority` (lower is evicted first). When another block already holds `hash`,
  // this one stays unregistered and returns to the free list once released; returns false
  // then. Throws InvalidArgument for a handle of another pool or one already registered.
  bool register_block(const BlockHandle& handle, SequenceHash hash, int priority = 0);

  [[nodiscard]] Tier tier() const;
  [[nodiscard]] const LayoutPtr& layout() const;
  [[nodiscard]] std::size_t capacity() const;
  [[nodiscard]] TierPoolStats stats() const;
  [[nodiscard]] std::string policy_name() const;

  struct State;  // shared with the holds, which may outlive the pool object

 private:
  std::shared_ptr<State> state_;
};

}  // namespace kvbm
