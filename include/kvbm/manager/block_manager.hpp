#pragma once
// The block manager: device (G1), host (G2) and disk (G3) tiers, each a TierPool, over one
// transfer context. It finds the longest cached prefix of a sequence across the tiers, writes
// every block registered in a tier through to the next tier down (asynchronously, in batches,
// through a bounded queue), and onboards a prefix found lower down into top-tier blocks the
// caller allocated. A block becomes visible in a tier only once its bytes have arrived; a
// failed transfer registers nothing. Thread-safe.
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "kvbm/manager/manager_metrics.hpp"
#include "kvbm/manager/tier_pool.hpp"
#include "kvbm/transfer/transfer_context.hpp"

namespace kvbm {

// The tiers' layouts (one shape for all); a missing tier is null. At least one of device and
// host; the top tier is the first present.
struct ManagerTiers {
  LayoutPtr device;
  LayoutPtr host;
  LayoutPtr disk;
};

struct ManagerOptions {
  EvictionPolicyKind policy = EvictionPolicyKind::Lru;  // every tier's
  std::size_t tokens_per_block = 16;                    // for kvbm_matched_tokens
  // Write-through offloads waiting to run, at most. A registration finding the queue full
  // displaces the lowest-priority waiting entry if its own priority is higher, else is not
  // offloaded; both count as dropped.
  std::size_t offload_queue_blocks = 4096;
  std::size_t offload_batch_blocks = 64;  // blocks per offload transfer, at most
  // A block goes on to the disk tier only once its hash was looked up (by match()) at least this
  // many times, counts halving every admission_half_life lookups: 2 keeps blocks seen once, most
  // of a chat's last turn, off the disk. 1: every block.
  std::uint32_t disk_admission_lookups = 1;
  std::uint64_t admission_half_life = std::uint64_t{1} << 20;

  void validate() const;
};

// The longest prefix of a sequence that some tier holds, block by block: each block from the
// highest tier that has it. The match holds them all, so none is evicted before it is used.
struct PrefixMatch {
  std::vector<BlockHandle> blocks;
  std::size_t device = 0;
  std::size_t host = 0;
  std::size_t disk = 0;
  [[nodiscard]] std::size_t size() const { return blocks.size(); }
};

class BlockManager {
 public:
  // Throws InvalidArgument for no device and no host tier, layouts of different shapes, or bad
  // options; the context is shared with the caller.
  BlockManager(ManagerTiers tiers, std::shared_ptr<TransferContext> context, ManagerOptions options = {});
  ~BlockManager();  // finishes the queued offloads
  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  [[nodiscard]] Tier top_tier() const;
  // The pool of `tier`, or nullptr when the manager has none.
  [[nodiscard]] TierPool* pool(Tier tier) const;

  [[nodiscard]] PrefixMatch match(std::span<const SequenceHash> hashes);
  // Top-tier blocks to write into (see TierPool::allocate).
  [[nodiscard]] std::vector<BlockHandle> allocate(std::size_t count);
  // Registers a top-tier block whose bytes the caller wrote, and queues its write-through.
  // False when the hash was registered already (this block is then not cached).
  bool register_block(const BlockHandle& block, SequenceHash hash, int priority = 0);
  // The same for many blocks, their write-throughs queued together (in this order). Returns how
  // many were registered. Throws InvalidArgument for counts that differ or a foreign block.
  std::size_t register_blocks(std::span<const BlockHandle> blocks, std::span<const SequenceHash> hashes, int priority = 0);
  // Copies the match's blocks that are not in the top tier, in order, into `destinations`
  // (top-tier blocks from allocate(), one per such block) and registers each there once the
  // bytes arrived. The handle fails (with nothing registered) if any copy failed; bad
  // arguments fail it too, never throw. The match is taken (pass a copy to keep holding it):
  // its holds below the top tier end when the copies end, before the registrations.
  [[nodiscard]] TransferHandle onboard(PrefixMatch match, std::span<const BlockHandle> destinations, int priority = 0);
  // Returns once every offload queued so far has finished (or failed).
  void flush_offloads();

  [[nodiscard]] ManagerMetrics metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
