#include "kvbm/manager/tier_pool.hpp"

#include <mutex>
#include <unordered_map>

#include "common/make_error.hpp"

namespace kvbm {

std::string_view to_string(Tier tier) noexcept {
  switch (tier) {
    case Tier::Device: return "device";
    case Tier::Host: return "host";
    case Tier::Disk: return "disk";
  }
  return "device";
}

struct TierPool::State {
  struct Block {
    std::size_t holders = 0;
    std::optional<SequenceHash> hash;  // registered as
    int priority = 0;
  };

  State(Tier tier, LayoutPtr layout, std::unique_ptr<EvictionPolicy> policy)
      : tier(tier), layout(std::move(layout)), policy(std::move(policy)), blocks(this->layout->config().num_blocks) {
    free.reserve(blocks.size());
    // Handed out from the back: block 0 first.
    for (std::size_t i = blocks.size(); i > 0; --i) free.push_back(i - 1);
  }

  // Called with the mutex held: one holder more.
  void hold(BlockId block) {
    if (blocks[block].holders++ == 0 && blocks[block].hash) policy->remove(block);
  }

  void release(BlockId block) {
    std::lock_guard lock(mutex);
    Block& meta = blocks[block];
    if (--meta.holders > 0) return;
    if (meta.hash) policy->add(block, *meta.hash, meta.priority);
    else free.push_back(block);
  }

  const Tier tier;
  const LayoutPtr layout;
  mutable std::mutex mutex;
  std::unique_ptr<EvictionPolicy> policy;
  std::vector<Block> blocks;
  std::vector<BlockId> free;
  std::unordered_map<SequenceHash, BlockId> registry;
  std::uint64_t evictions = 0;
};

struct BlockHandle::Hold {
  Hold(std::shared_ptr<TierPool::State> state, BlockId block) : state(std::move(state)), block(block) {}
  ~Hold() { state->release(block); }
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;
  std::shared_ptr<TierPool::State> state;
  BlockId block;
};

BlockId BlockHandle::block() const {
  if (!hold_) throw make_error(ErrorCode::InvalidArgument, "empty block handle");
  return hold_->block;
}

Tier BlockHandle::tier() const {
  if (!hold_) throw make_error(ErrorCode::InvalidArgument, "empty block handle");
  return hold_->state->tier;
}

std::optional<SequenceHash> BlockHandle::hash() const {
  if (!hold_) return std::nullopt;
  std::lock_guard lock(hold_->state->mutex);
  return hold_->state->blocks[hold_->block].hash;
}

TierPool::TierPool(Tier tier, LayoutPtr layout, std::unique_ptr<EvictionPolicy> policy) {
  if (!layout) throw make_error(ErrorCode::InvalidArgument, "{} tier: layout is null", to_string(tier));
  if (!policy) throw make_error(ErrorCode::InvalidArgument, "{} tier: eviction policy is null", to_string(tier));
  state_ = std::make_shared<State>(tier, std::move(layout), std::move(policy));
}

TierPool::~TierPool() = default;

std::optional<BlockHandle> TierPool::acquire(SequenceHash hash) {
  std::lock_guard lock(state_->mutex);
  state_->policy->on_lookup(hash);
  const auto found = state_->registry.find(hash);
  if (found == state_->registry.end()) return std::nullopt;
  state_->hold(found->second);
  return BlockHandle(std::make_shared<BlockHandle::Hold>(state_, found->second));
}

void TierPool::note_request(std::span<const SequenceHash> hashes) {
  std::lock_guard lock(state_->mutex);
  state_->policy->on_request(hashes);
}

bool TierPool::admits(SequenceHash hash) {
  std::lock_guard lock(state_->mutex);
  return !state_->free.empty() || state_->policy->admit(hash);
}

bool TierPool::contains(SequenceHash hash) const {
  std::lock_guard lock(state_->mutex);
  return state_->registry.contains(hash);
}

std::vector<BlockHandle> TierPool::allocate(std::size_t count) {
  std::vector<BlockId> taken;
  {
    std::lock_guard lock(state_->mutex);
    State& s = *state_;
    while (taken.size() < count) {
      if (!s.free.empty()) {
        taken.push_back(s.free.back());
        s.free.pop_back();
      } else if (const auto victim = s.policy->victim()) {
        s.policy->remove(*victim);
        s.policy->on_evict(*victim);
        s.registry.erase(*s.blocks[*victim].hash);
        s.blocks[*victim].hash.reset();
        ++s.evictions;
        taken.push_back(*victim);
      } else {
        break;
      }
      s.blocks[taken.back()].holders = 1;
    }
  }
  std::vector<BlockHandle> handles;
  handles.reserve(taken.size());
  for (BlockId block : taken) handles.push_back(BlockHandle(std::make_shared<BlockHandle::Hold>(state_, block)));
  return handles;
}

bool TierPool::register_block(const BlockHandle& handle, SequenceHash hash, int priority) {
  if (!handle.hold_ || handle.hold_->state != state_) {
    throw make_error(ErrorCode::InvalidArgument, "{} tier: registering a block handle of another pool", to_string(state_->tier));
  }
  std::lock_guard lock(state_->mutex);
  State::Block& meta = state_->blocks[handle.hold_->block];
  if (meta.hash) {
    throw make_error(ErrorCode::InvalidArgument, "{} tier: block {} is already registered as {:#018x}",
                     to_string(state_->tier), handle.hold_->block, *meta.hash);
  }
  if (!state_->registry.emplace(hash, handle.hold_->block).second) return false;
  meta.hash = hash;
  meta.priority = priority;
  state_->policy->on_register(handle.hold_->block, hash);
  return true;
}

Tier TierPool::tier() const { return state_->tier; }
const LayoutPtr& TierPool::layout() const { return state_->layout; }
std::size_t TierPool::capacity() const { return state_->blocks.size(); }

TierPoolStats TierPool::stats() const {
  std::lock_guard lock(state_->mutex);
  TierPoolStats stats;
  stats.capacity = state_->blocks.size();
  stats.free = state_->free.size();
  for (const State::Block& block : state_->blocks) {
    if (block.holders > 0) ++stats.held;
    if (block.hash) ++stats.registered;
    if (block.hash && block.holders == 0) ++stats.cached;
  }
  stats.evictions = state_->evictions;
  return stats;
}

std::string TierPool::policy_name() const {
  std::lock_guard lock(state_->mutex);
  return std::string(state_->policy->name());
}

}  // namespace kvbm
