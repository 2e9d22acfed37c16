#include "manager/prefix_candidates.hpp"

namespace kvbm {

void PrefixCandidates::learn(std::span<const SequenceHash> hashes) {
  for (std::size_t i = 1; i < hashes.size(); ++i) {
    if (by_hash_.contains(hashes[i])) {
      // Registered before its parent link was known (a lower tier can register a child first).
      Node& node = nodes_[by_hash_[hashes[i]]];
      if (!node.parent) node.parent = hashes[i - 1];
      count_in_parent(node);
      continue;
    }
    if (pending_parent_.size() >= kMaxPending) pending_parent_.clear();
    pending_parent_.try_emplace(hashes[i], hashes[i - 1]);
  }
}

void PrefixCandidates::count_in_parent(Node& node) {
  if (!node.parent) return;
  const auto parent = by_hash_.find(*node.parent);
  if (parent == by_hash_.end()) return;
  Node& up = nodes_[parent->second];
  if (node.counted_in == std::pair{parent->second, up.serial}) return;
  node.counted_in = std::pair{parent->second, up.serial};
  if (up.children++ == 0 && up.key) {  // a leaf candidate becomes an inner one
    leaves_.erase(*up.key);
    inner_.insert(*up.key);
  }
}

void PrefixCandidates::registered(BlockId block, SequenceHash hash) {
  Node node;
  node.hash = hash;
  node.serial = ++serials_;
  if (const auto found = pending_parent_.find(hash); found != pending_parent_.end()) {
    node.parent = found->second;
    pending_parent_.erase(found);
  }
  by_hash_[hash] = block;
  Node& placed = nodes_[block] = node;
  count_in_parent(placed);
  // Children registered before this block (lower tiers) count once their parent is here.
  // They are found when a request names them again (learn), not searched for here.
}

void PrefixCandidates::evicted(BlockId block) {
  const auto found = nodes_.find(block);
  if (found == nodes_.end()) return;
  Node& node = found->second;
  unplace(node);
  if (node.counted_in) {
    const auto up = nodes_.find(node.counted_in->first);
    // The parent's registration this node counted in, if it is still the one there.
    if (up != nodes_.end() && up->second.serial == node.counted_in->second && --up->second.children == 0 &&
        up->second.key) {  // the parent is a leaf again
      inner_.erase(*up->second.key);
      leaves_.insert(*up->second.key);
    }
  }
  // Children still registered count in a registration that is gone (see the serials).
  by_hash_.erase(node.hash);
  nodes_.erase(found);
}

void PrefixCandidates::place(Node& node) { (node.children == 0 ? leaves_ : inner_).insert(*node.key); }

void PrefixCandidates::unplace(Node& node) {
  if (!node.key) return;
  (node.children == 0 ? leaves_ : inner_).erase(*node.key);
  node.key.reset();
}

void PrefixCandidates::add(BlockId block, int priority, double rank) {
  Node& node = nodes_[block];
  unplace(node);
  node.key = Key{priority, rank, arrivals_++, block};
  place(node);
}

void PrefixCandidates::remove(BlockId block) {
  const auto found = nodes_.find(block);
  if (found != nodes_.end()) unplace(found->second);
}

void PrefixCandidates::rerank(BlockId block, double rank) {
  const auto found = nodes_.find(block);
  if (found == nodes_.end() || !found->second.key) return;
  Node& node = found->second;
  Key key = *node.key;
  unplace(node);
  std::get<1>(key) = rank;
  node.key = key;
  place(node);
}

std::optional<BlockId> PrefixCandidates::first() const {
  if (!leaves_.empty()) return std::get<3>(*leaves_.begin());
  if (!inner_.empty()) return std::get<3>(*inner_.begin());
  return std::nullopt;
}

std::optional<BlockId> PrefixCandidates::block_of(SequenceHash hash) const {
  const auto found = by_hash_.find(hash);
  if (found == by_hash_.end()) return std::nullopt;
  return found->second;
}

std::optional<SequenceHash> PrefixCandidates::hash_of(BlockId block) const {
  const auto found = nodes_.find(block);
  if (found == nodes_.end()) return std::nullopt;
  return found->second.hash;
}

std::size_t PrefixCandidates::orphans() const {
  std::size_t count = 0;
  for (const auto& [block, node] : nodes_) {
    if (node.parent && !by_hash_.contains(*node.parent)) ++count;
  }
  return count;
}

}  // namespace kvbm
