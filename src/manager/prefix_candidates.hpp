#pragma once
// The registered blocks of one tier as a prefix tree, for the prefix-aware policies: each
// block's parent (the block its sequence extends, learned from requests) and how many of its
// children are registered. Candidates are kept in two orders, leaves (no registered child) and
// inner blocks, so that the next victim is a leaf whenever one is a candidate: a cached prefix
// then loses its tail, never its middle. Not thread-safe: the pool's lock covers it.
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <tuple>
#include <unordered_map>

#include "kvbm/manager/eviction_policy.hpp"

namespace kvbm {

class PrefixCandidates {
 public:
  // Learns each hash's parent from a request (hashes[i] extends hashes[i - 1]). A hash keeps the
  // first parent seen; links of hashes not yet registered are forgotten past `kMaxPending`.
  void learn(std::span<const SequenceHash> hashes);
  void registered(BlockId block, SequenceHash hash);
  void evicted(BlockId block);
  // A candidate, ordered by (priority, rank, arrival): lower first.
  void add(BlockId block, int priority, double rank);
  void remove(BlockId block);
  // A candidate's rank changed (no-op for a block that is not a candidate).
  void rerank(BlockId block, double rank);
  // The first leaf candidate; the first inner one when no leaf is a candidate.
  [[nodiscard]] std::optional<BlockId> first() const;
  [[nodiscard]] std::optional<BlockId> block_of(SequenceHash hash) const;
  [[nodiscard]] std::optional<SequenceHash> hash_of(BlockId block) const;
  // Registered blocks whose parent is known and not registered (the invariant's breaches).
  [[nodiscard]] std::size_t orphans() const;

  static constexpr std::size_t kMaxPending = std::size_t{1} << 20;

 private:
  using Key = std::tuple<int, double, std::uint64_t, BlockId>;
  struct Node {
    SequenceHash hash = 0;
    std::uint64_t serial = 0;            // tells a block's registrations apart
    std::optional<SequenceHash> parent;  // learned from requests
    // The registration this node counts in as a child: (parent block, its serial).
    std::optional<std::pair<BlockId, std::uint64_t>> counted_in;
    std::uint32_t children = 0;  // registered children counting in this node
    std::optional<Key> key;              // set while a candidate
  };

  void place(Node& node);    // into leaves_ or inner_, by its children
  void unplace(Node& node);  // out of either
  void count_in_parent(Node& node);

  std::unordered_map<SequenceHash, SequenceHash> pending_parent_;  // learned, not yet registered
  std::unordered_map<BlockId, Node> nodes_;
  std::unordered_map<SequenceHash, BlockId> by_hash_;
  std::set<Key> leaves_;
  std::set<Key> inner_;
  std::uint64_t arrivals_ = 0;
  std::uint64_t serials_ = 0;
};

}  // namespace kvbm
