#include "kvbm/manager/block_manager.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "layout/chunk_io.hpp"
#include "manager/decaying_counts.hpp"
#include "manager/offload_queue.hpp"

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t index_of(Tier tier) { return static_cast<std::size_t>(tier); }

bool same_shape(const LayoutConfig& a, const LayoutConfig& b) {
  return a.num_layers == b.num_layers && a.outer_dim == b.outer_dim && a.page_size == b.page_size &&
         a.inner_dim == b.inner_dim && a.dtype_bytes == b.dtype_bytes;
}

}  // namespace

void ManagerOptions::validate() const {
  if (tokens_per_block == 0) throw make_error(ErrorCode::InvalidArgument, "manager option tokens_per_block must be > 0");
  if (offload_queue_blocks == 0) throw make_error(ErrorCode::InvalidArgument, "manager option offload_queue_blocks must be > 0");
  if (offload_batch_blocks == 0) throw make_error(ErrorCode::InvalidArgument, "manager option offload_batch_blocks must be > 0");
}

struct BlockManager::Impl {
  Impl(ManagerTiers layouts, std::shared_ptr<TransferContext> context, ManagerOptions options)
      : context(std::move(context)), options(options), queue(options.offload_queue_blocks) {
    this->options.validate();
    if (!this->context) throw make_error(ErrorCode::InvalidArgument, "block manager: transfer context is null");
    if (!layouts.device && !layouts.host) {
      throw make_error(ErrorCode::InvalidArgument, "block manager: needs a device or a host tier");
    }
    const std::array<std::pair<Tier, LayoutPtr>, 3> given = {
        std::pair{Tier::Device, layouts.device}, std::pair{Tier::Host, layouts.host}, std::pair{Tier::Disk, layouts.disk}};
    for (const auto& [tier, layout] : given) {
      if (!layout) continue;
      if (!order.empty() && !same_shape(layout->config(), pools[index_of(order.front())]->layout()->config())) {
        throw make_error(ErrorCode::InvalidArgument, "block manager: the {} tier's block shape differs from the {} tier's",
                         to_string(tier), to_string(order.front()));
      }
      pools[index_of(tier)] = std::make_unique<TierPool>(
          tier, layout, make_tier_policy(options.policy, layout->config().num_blocks, /*top=*/order.empty()));
      order.push_back(tier);
    }
    block_bytes = kvbm::block_bytes(*pools[index_of(order.front())]->layout());
    worker = std::thread([this] { run_offloads(); });
  }

  ~Impl() {
    {
      std::unique_lock lock(onboard_mutex);
      onboards_idle.wait(lock, [&] { return onboards_in_flight == 0; });
    }
    queue.close();
    worker.join();
  }

  // Onboards in flight call back into this object: its destructor waits for them.
  void begin_onboard() {
    std::lock_guard lock(onboard_mutex);
    ++onboards_in_flight;
  }
  void end_onboard() {
    std::lock_guard lock(onboard_mutex);
    if (--onboards_in_flight == 0) onboards_idle.notify_all();
  }

  TierPool& pool_of(Tier tier) const { return *pools[index_of(tier)]; }

  std::optional<Tier> below(Tier tier) const {
    for (std::size_t i = 0; i + 1 < order.size(); ++i) {
      if (order[i] == tier) return order[i + 1];
    }
    return std::nullopt;
  }

  // The prepared path between two tiers, made on first use.
  TransferPath path(Tier from, Tier to) {
    std::lock_guard lock(paths_mutex);
    auto found = paths.find({from, to});
    if (found == paths.end()) {
      found = paths.emplace(std::pair{from, to}, context->prepare(pool_of(from).layout(), pool_of(to).layout())).first;
    }
    return found->second;
  }

  // Registers each block in its tier and queues the copies to the tier below, all at once.
  // Returns how many were registered (a hash registered already is not).
  std::size_t register_and_write_through(Tier tier, std::span<const BlockHandle> blocks, std::span<const SequenceHash> hashes,
                                         int priority) {
    std::vector<OffloadEntry> entries;
    std::size_t registered = 0;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      if (!pool_of(tier).register_block(blocks[i], hashes[i], priority)) continue;
      ++registered;
      if (below(tier)) entries.push_back({tier, blocks[i], hashes[i], priority});
    }
    if (!entries.empty()) offload_dropped += queue.push_all(std::move(entries));
    return registered;
  }

  void record(std::map<std::pair<Tier, Tier>, TransferTotals>& totals, Tier from, Tier to, std::size_t blocks,
              bool ok, double seconds) {
    std::lock_guard lock(metrics_mutex);
    TransferTotals& t = totals[{from, to}];
    ++t.transfers;
    if (ok) {
      t.blocks += blocks;
      t.bytes += blocks * block_bytes;
    } else {
      t.failed_blocks += blocks;
    }
    t.seconds += seconds;
  }

  // The write-through worker: copies queued blocks to the tier below, registering each copy
  // there once it arrived; a failed copy registers nothing.
  void run_offloads() {
    for (;;) {
      std::vector<OffloadEntry> batch = queue.take(options.offload_batch_blocks);
      if (batch.empty()) return;
      try {
        offload(batch);
      } catch (...) {
        log().error("offload of {} blocks: {}", batch.size(), current_exception_as_error("offload").message());
      }
      const std::size_t count = batch.size();
      batch.clear();  // the source holds go before the queue says idle
      queue.finished(count);
    }
  }

  bool admitted_to_disk(SequenceHash hash) {
    if (options.disk_admission_lookups <= 1) return true;
    std::lock_guard lock(metrics_mutex);
    if (lookup_counts.get(hash) >= options.disk_admission_lookups) return true;
    ++admission_refused;
    return false;
  }

  // Copies a batch to the tier below its source. Blocks that tier's policy does not admit are
  // offered, from the same source, to the tier below it in turn, so that a host tier's
  // admission does not keep them off the disk.
  void offload(std::vector<OffloadEntry>& batch) {
    const Tier from = batch.front().from;
    std::vector<OffloadEntry*> offered;
    for (OffloadEntry& entry : batch) offered.push_back(&entry);
    for (std::optional<Tier> to = below(from); to && !offered.empty(); to = below(*to)) {
      std::vector<OffloadEntry*> needed, refused;
      TierPool& target = pool_of(*to);
      for (OffloadEntry* entry : offered) {
        if (target.contains(entry->hash)) continue;
        if (*to == Tier::Disk && !admitted_to_disk(entry->hash)) continue;
        if (!target.admits(entry->hash)) {
          ++policy_refused;
          refused.push_back(entry);
          continue;
        }
        needed.push_back(entry);
      }
      copy_down(from, *to, needed);
      offered = std::move(refused);
    }
  }

  // Copies the entries' blocks from `from` into new blocks of `to` and registers them there
  // (which queues their own write-through further down).
  void copy_down(Tier from, Tier to, std::vector<OffloadEntry*> needed) {
    if (needed.empty()) return;
    TierPool& target = pool_of(to);
    std::vector<BlockHandle> destinations = target.allocate(needed.size());
    if (destinations.size() < needed.size()) {
      offload_dropped += needed.size() - destinations.size();  // every block below is held
      needed.resize(destinations.size());
      if (needed.empty()) return;
    }
    std::vector<BlockPair> pairs;
    pairs.reserve(needed.size());
    for (std::size_t i = 0; i < needed.size(); ++i) pairs.emplace_back(needed[i]->source.block(), destinations[i].block());
    const auto start = Clock::now();
    const Status status = path(from, to).post(pairs).wait();
    record(offload_totals, from, to, pairs.size(), status.ok(), std::chrono::duration<double>(Clock::now() - start).count());
    if (!status.ok()) {
      log().warn("offload {} -> {} of {} blocks failed: {}", to_string(from), to_string(to), pairs.size(), status.to_string());
      return;
    }
    std::vector<SequenceHash> hashes;
    for (const OffloadEntry* entry : needed) hashes.push_back(entry->hash);
    // One batch holds one priority only when its entries share it; each keeps its own below.
    for (std::size_t i = 0; i < needed.size(); ++i) {
      register_and_write_through(to, std::span(destinations).subspan(i, 1), std::span(hashes).subspan(i, 1),
                                 needed[i]->priority);
    }
  }

  TransferHandle onboard(PrefixMatch match, std::span<const BlockHandle> destinations, int priority) {
    const Tier top = order.front();
    struct Group {
      std::vector<BlockPair> pairs;
      std::vector<BlockHandle> sources;
    };
    std::map<Tier, Group> groups;
    std::vector<std::pair<BlockHandle, SequenceHash>> registrations;
    std::size_t next = 0;
    for (const BlockHandle& source : match.blocks) {
      if (!source || source.tier() == top) continue;
      if (next >= destinations.size()) {
        return TransferHandle::completed(make_error(ErrorCode::InvalidArgument,
                                                    "onboard: {} destination blocks for more blocks outside the {} tier",
                                                    destinations.size(), to_string(top)));
      }
      const BlockHandle& destination = destinations[next++];
      if (!destination || destination.tier() != top || destination.hash()) {
        return TransferHandle::completed(make_error(ErrorCode::InvalidArgument,
                                                    "onboard: destination {} is not an unregistered {} block (from allocate())",
                                                    next - 1, to_string(top)));
      }
      const auto hash = source.hash();
      if (!hash) return TransferHandle::completed(make_error(ErrorCode::InvalidArgument, "onboard: a matched block is not registered"));
      Group& group = groups[source.tier()];
      group.pairs.emplace_back(source.block(), destination.block());
      group.sources.push_back(source);
      registrations.emplace_back(destination, *hash);
    }
    match = {};  // the groups' copies are the holds now: they end before the registrations
    if (next != destinations.size()) {
      return TransferHandle::completed(make_error(ErrorCode::InvalidArgument,
                                                  "onboard: {} destination blocks for {} blocks outside the {} tier",
                                                  destinations.size(), next, to_string(top)));
    }
    auto state = std::make_shared<CompletionState>(spin_budgets(context->config().latency).handle_wait);
    if (groups.empty()) {
      state->complete(Status{});
      return TransferHandle(state);
    }
    // Every group's transfer ends here; the last one registers the destinations (all or none).
    struct Join {
      std::mutex mutex;
      std::size_t left;
      Status status;
      std::vector<std::vector<BlockHandle>> sources;
      std::vector<std::pair<BlockHandle, SequenceHash>> registrations;
    };
    // Every path first: once one transfer is posted, nothing may throw before the rest are.
    std::vector<TransferPath> paths_used;
    for (const auto& [tier, group] : groups) paths_used.push_back(path(tier, top));
    auto join = std::make_shared<Join>();
    join->left = groups.size();
    join->registrations = std::move(registrations);
    begin_onboard();
    std::size_t g = 0;
    for (auto& [tier, group] : groups) {
      const Tier from = tier;
      const std::size_t blocks = group.pairs.size();
      join->sources.push_back(std::move(group.sources));
      const auto start = Clock::now();
      TransferHandle handle = paths_used[g++].post(group.pairs);
      handle.detach([this, join, state, from, top, blocks, start, priority](const Status& status) {
        record(onboard_totals, from, top, blocks, status.ok(), std::chrono::duration<double>(Clock::now() - start).count());
        std::unique_lock lock(join->mutex);
        if (!status.ok() && join->status.ok()) join->status = status;
        if (--join->left > 0) return;
        // The sources are let go before the copies are registered, so that what the
        // registrations queue finds the tiers below in their settled state.
        join->sources.clear();
        if (join->status.ok()) {
          std::vector<BlockHandle> blocks;
          std::vector<SequenceHash> hashes;
          for (const auto& [block, hash] : join->registrations) {
            blocks.push_back(block);
            hashes.push_back(hash);
          }
          register_and_write_through(top, blocks, hashes, priority);
        }
        join->registrations.clear();
        const Status outcome = join->status;
        lock.unlock();
        state->complete(outcome);
        end_onboard();
      });
    }
    return TransferHandle(state);
  }

  std::shared_ptr<TransferContext> context;
  ManagerOptions options;
  std::array<std::unique_ptr<TierPool>, 3> pools;
  std::vector<Tier> order;  // present tiers, top first
  std::size_t block_bytes = 0;
  std::mutex paths_mutex;
  std::map<std::pair<Tier, Tier>, TransferPath> paths;
  OffloadQueue queue;
  std::atomic<std::uint64_t> offload_dropped{0};
  std::atomic<std::uint64_t> policy_refused{0};  // by a lower tier's admission
  mutable std::mutex metrics_mutex;
  std::map<std::pair<Tier, Tier>, TransferTotals> offload_totals;
  std::map<std::pair<Tier, Tier>, TransferTotals> onboard_totals;
  std::uint64_t looked_up = 0;
  DecayingCounts lookup_counts{std::size_t{1} << 22, options.admission_half_life};  // for disk admission
  std::uint64_t admission_refused = 0;
  std::array<std::uint64_t, 3> hits{};
  std::mutex onboard_mutex;
  std::condition_variable onboards_idle;
  std::size_t onboards_in_flight = 0;
  std::thread worker;  // last: started once everything above exists
};

BlockManager::BlockManager(ManagerTiers tiers, std::shared_ptr<TransferContext> context, ManagerOptions options)
    : impl_(std::make_unique<Impl>(std::move(tiers), std::move(context), options)) {}

BlockManager::~BlockManager() = default;

Tier BlockManager::top_tier() const { return impl_->order.front(); }

TierPool* BlockManager::pool(Tier tier) const { return impl_->pools[index_of(tier)].get(); }

PrefixMatch BlockManager::match(std::span<const SequenceHash> hashes) {
  impl_->pool_of(impl_->order.front()).note_request(hashes);
  PrefixMatch match;
  for (SequenceHash hash : hashes) {
    std::optional<BlockHandle> found;
    for (Tier tier : impl_->order) {
      found = impl_->pool_of(tier).acquire(hash);
      if (found) break;
    }
    if (!found) break;
    switch (found->tier()) {
      case Tier::Device: ++match.device; break;
      case Tier::Host: ++match.host; break;
      case Tier::Disk: ++match.disk; break;
    }
    match.blocks.push_back(std::move(*found));
  }
  // A lower tier hears the part of the request that the tiers above it could not serve: what
  // it is asked for. Counting the whole request there would rank high the blocks the top tier
  // keeps anyway, and a lower tier would hold copies of them instead of what fell out above.
  for (std::size_t k = 1; k < impl_->order.size(); ++k) {
    std::size_t served_above = 0;
    while (served_above < match.size() && index_of(match.blocks[served_above].tier()) < index_of(impl_->order[k])) {
      ++served_above;
    }
    impl_->pool_of(impl_->order[k]).note_request(hashes.subspan(served_above));
  }
  std::lock_guard lock(impl_->metrics_mutex);
  if (impl_->options.disk_admission_lookups > 1) {
    for (SequenceHash hash : hashes) (void)impl_->lookup_counts.count(hash);
  }
  impl_->looked_up += hashes.size();
  impl_->hits[index_of(Tier::Device)] += match.device;
  impl_->hits[index_of(Tier::Host)] += match.host;
  impl_->hits[index_of(Tier::Disk)] += match.disk;
  return match;
}

std::vector<BlockHandle> BlockManager::allocate(std::size_t count) { return impl_->pool_of(top_tier()).allocate(count); }

bool BlockManager::register_block(const BlockHandle& block, SequenceHash hash, int priority) {
  return register_blocks(std::span(&block, 1), std::span(&hash, 1), priority) == 1;
}

std::size_t BlockManager::register_blocks(std::span<const BlockHandle> blocks, std::span<const SequenceHash> hashes,
                                          int priority) {
  if (blocks.size() != hashes.size()) {
    throw make_error(ErrorCode::InvalidArgument, "register_blocks: {} blocks but {} hashes", blocks.size(), hashes.size());
  }
  for (const BlockHandle& block : blocks) {
    if (!block || block.tier() != top_tier()) {
      throw make_error(ErrorCode::InvalidArgument, "register_blocks: a block is not one of the {} tier's", to_string(top_tier()));
    }
  }
  return impl_->register_and_write_through(top_tier(), blocks, hashes, priority);
}

TransferHandle BlockManager::onboard(PrefixMatch match, std::span<const BlockHandle> destinations, int priority) {
  try {
    return impl_->onboard(std::move(match), destinations, priority);
  } catch (...) {
    return TransferHandle::completed(current_exception_as_error("onboard"));
  }
}

void BlockManager::flush_offloads() { impl_->queue.wait_idle(); }

ManagerMetrics BlockManager::metrics() const {
  ManagerMetrics metrics;
  {
    std::lock_guard lock(impl_->metrics_mutex);
    metrics.looked_up_blocks = impl_->looked_up;
    metrics.device_hits = impl_->hits[index_of(Tier::Device)];
    metrics.host_hits = impl_->hits[index_of(Tier::Host)];
    metrics.disk_hits = impl_->hits[index_of(Tier::Disk)];
    metrics.offloads = impl_->offload_totals;
    metrics.onboards = impl_->onboard_totals;
    metrics.disk_admission_refused_blocks = impl_->admission_refused;
  }
  metrics.matched_tokens = (metrics.device_hits + metrics.host_hits + metrics.disk_hits) * impl_->options.tokens_per_block;
  metrics.offload_dropped_blocks = impl_->offload_dropped;
  metrics.policy_admission_refused_blocks = impl_->policy_refused;
  metrics.offload_queue_depth = impl_->queue.depth();
  for (Tier tier : impl_->order) metrics.tiers[tier] = impl_->pool_of(tier).stats();
  return metrics;
}

}  // namespace kvbm
