// `kvbm replay --sequential` against a reference model written here from the rules alone: a
// request's hit is the longest prefix of its hash ids that some tier holds; it holds all its
// blocks (blocks found only in the tier below are copied up; misses are registered in the top
// tier; each evicts the least recently released unheld block when the tier is full), every
// block registered in the top tier is written through to the tier below, and at its end the
// request releases its blocks last first. Generated traces in both formats, one tier and two.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <list>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kvbm/manager/eviction_policy.hpp"
#include "support/roundtrip.hpp"
#include "support/run_command.hpp"

namespace kvbm::testing {
namespace {

// One tier of the model: registered hashes, holds, and the unheld ones in release order.
class ModelTier {
 public:
  explicit ModelTier(std::size_t capacity) : free_(capacity) {}

  bool has(std::uint64_t hash) const { return holders_.contains(hash); }
  // Takes a hold on a registered hash.
  bool acquire(std::uint64_t hash) {
    const auto found = holders_.find(hash);
    if (found == holders_.end()) return false;
    if (found->second++ == 0) unheld_.remove(hash);
    return true;
  }
  // A slot to write into (free, else the oldest unheld block, forgotten); false when none.
  bool take_slot() {
    if (free_ > 0) {
      --free_;
      return true;
    }
    if (unheld_.empty()) return false;
    holders_.erase(unheld_.front());
    unheld_.pop_front();
    return true;
  }
  // A taken slot becomes `hash`, held once; false (the slot stays anonymous) if already here.
  bool register_slot(std::uint64_t hash) {
    if (holders_.contains(hash)) return false;
    holders_[hash] = 1;
    return true;
  }
  void release(std::uint64_t hash) {
    if (--holders_.at(hash) == 0) unheld_.push_back(hash);
  }
  void release_anonymous() { ++free_; }

 private:
  std::size_t free_;
  std::unordered_map<std::uint64_t, std::size_t> holders_;  // registered hash -> holds
  std::list<std::uint64_t> unheld_;                          // oldest release first
};

struct ModelHits {
  std::size_t top = 0;
  std::size_t below = 0;
};

// A request's hold on one top-tier block: a registered hash, or an anonymous slot.
struct Hold {
  std::uint64_t hash;
  bool anonymous;
};

ModelHits run_model(const std::vector<std::vector<std::uint64_t>>& requests, std::size_t top_blocks, std::size_t below_blocks) {
  ModelTier top(top_blocks);
  std::optional<ModelTier> below;
  if (below_blocks > 0) below.emplace(below_blocks);
  ModelHits hits;
  // Writes a top-tier block through: a slot below unless the hash is there (then nothing).
  const auto write_through = [&](std::uint64_t hash) {
    if (!below || below->has(hash) || !below->take_slot()) return;
    below->register_slot(hash);
    below->release(hash);
  };
  for (const auto& ids : requests) {
    std::vector<Hold> held;
    std::vector<std::uint64_t> from_below;  // matched below the top tier, in order
    std::vector<bool> in_top;
    for (std::uint64_t id : ids) {
      if (top.acquire(id)) {
        in_top.push_back(true);
      } else if (below && below->acquire(id)) {
        in_top.push_back(false);
        from_below.push_back(id);
      } else {
        break;
      }
    }
    // Copy-up slots; with too few, the prefix ends at the first block that gets none.
    std::size_t slots = 0;
    while (slots < from_below.size() && top.take_slot()) ++slots;
    std::size_t prefix = in_top.size();
    if (slots < from_below.size()) {
      std::size_t seen = 0;
      for (std::size_t i = 0; i < in_top.size(); ++i) {
        if (!in_top[i] && seen++ == slots) {
          prefix = i;
          break;
        }
      }
      for (std::size_t i = in_top.size(); i-- > prefix;) {  // the cut part, tail first
        if (in_top[i]) top.release(ids[i]);
        else below->release(ids[i]);
      }
      from_below.resize(slots);
    }
    for (std::uint64_t id : from_below) below->release(id);  // the copies are done
    for (std::size_t i = 0; i < prefix; ++i) {
      if (in_top[i]) {
        ++hits.top;
        held.push_back({ids[i], false});
      } else {
        ++hits.below;
        top.register_slot(ids[i]);
        held.push_back({ids[i], false});
      }
    }
    for (std::size_t i = 0; i < prefix; ++i) {
      if (!in_top[i]) write_through(ids[i]);
    }
    // Slots for every miss first (each may evict), then the registrations.
    std::size_t miss_slots = 0;
    while (prefix + miss_slots < ids.size() && top.take_slot()) ++miss_slots;
    std::vector<std::uint64_t> computed;
    for (std::size_t i = prefix; i < prefix + miss_slots; ++i) {
      const bool registered = top.register_slot(ids[i]);
      held.push_back({ids[i], !registered});
      if (registered) computed.push_back(ids[i]);
    }
    for (std::uint64_t id : computed) write_through(id);
    for (std::size_t i = held.size(); i-- > 0;) {
      if (held[i].anonymous) top.release_anonymous();
      else top.release(held[i].hash);
    }
  }
  return hits;
}

// Requests that share prefixes: a few roots, each request a root's blocks plus a random walk of
// continuations, so prefixes of every length recur. Ids are unique within a request.
std::vector<std::vector<std::uint64_t>> generated_requests(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::uint64_t>> known;  // earlier requests, to extend or cut
  std::uint64_t next_id = 1000;
  std::vector<std::vector<std::uint64_t>> requests;
  while (requests.size() < count) {
    std::vector<std::uint64_t> ids;
    if (!known.empty() && rng() % 4 != 0) {
      const auto& base = known[rng() % known.size()];
      ids.assign(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(rng() % (base.size() + 1)));
    }
    for (std::size_t extra = rng() % 6; extra > 0; --extra) ids.push_back(next_id++);
    if (ids.empty()) ids.push_back(next_id++);
    known.push_back(ids);
    requests.push_back(std::move(ids));
  }
  return requests;
}

std::string write_trace(const std::string& dir, const std::vector<std::vector<std::uint64_t>>& requests, bool qwen) {
  const std::string path = dir + (qwen ? "/qwen.jsonl" : "/mooncake.jsonl");
  std::ofstream out(path);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    nlohmann::json line = qwen ? nlohmann::json{{"chat_id", i}, {"parent_chat_id", -1}, {"timestamp", 0.5 * i},
                                                {"input_length", 16 * requests[i].size()}, {"output_length", 20},
                                                {"type", "text"}, {"turn", 1}, {"hash_ids", requests[i]}}
                               : nlohmann::json{{"timestamp", 27 * i}, {"input_length", 512 * requests[i].size()},
                                                {"output_length", 20}, {"hash_ids", requests[i]}};
    out << line.dump() << '\n';
  }
  return path;
}

nlohmann::json run_replay(const std::string& arguments) {
  const std::string command = std::string(KVBM_CLI_PATH) + " replay --sequential --json " + arguments + " 2>/dev/null";
  const auto [output, status] = run_command(command);
  EXPECT_EQ(status, 0) << command << "\n" << output;
  return nlohmann::json::parse(output, nullptr, false);
}

struct ReplayCase {
  bool qwen;
  std::size_t host_blocks;
  std::size_t disk_blocks;
};

class ReplayModel : public ::testing::TestWithParam<ReplayCase> {};

TEST_P(ReplayModel, SequentialReplayEqualsTheModel) {
  const ReplayCase& c = GetParam();
  TempDir dir;
  const auto requests = generated_requests(400, c.host_blocks * 31 + c.disk_blocks + c.qwen);
  const std::string trace = write_trace(dir.path(), requests, c.qwen);
  const nlohmann::json result =
      run_replay(fmt::format("--trace {} --device-blocks 0 --host-blocks {} --disk-blocks {} --disk-dir {} --block-bytes 1000",
                             trace, c.host_blocks, c.disk_blocks, dir.path()));
  ASSERT_TRUE(result.is_object()) << result;
  const ModelHits model = run_model(requests, c.host_blocks, c.disk_blocks);
  EXPECT_EQ(result["trace"], c.qwen ? "qwen-bailian" : "mooncake");
  EXPECT_EQ(result["requests"].get<std::size_t>(), requests.size());
  EXPECT_EQ(result["hits"]["host"].get<std::size_t>(), model.top);
  EXPECT_EQ(result["hits"]["disk"].get<std::size_t>(), model.below);
  EXPECT_EQ(result["corrupt_blocks"].get<std::size_t>(), 0u);
  EXPECT_EQ(result["verified_blocks"].get<std::size_t>(), model.below);
  EXPECT_GT(model.top, 0u);  // the traces do reuse prefixes
  if (c.disk_blocks > 0) EXPECT_GT(model.below, 0u);
}

INSTANTIATE_TEST_SUITE_P(Traces, ReplayModel,
                         ::testing::Values(ReplayCase{false, 24, 0}, ReplayCase{true, 24, 0}, ReplayCase{false, 24, 200},
                                           ReplayCase{true, 16, 120}, ReplayCase{false, 6, 40}, ReplayCase{true, 3, 500}));

// The frequency-aware policy keeps the blocks multi-turn chats come back to (system prompts,
// conversations' early turns) where LRU lets each new turn's blocks push them out.
TEST(Replay, FrequencyPolicyBeatsLruOnMultiTurnChatAtASmallTopTier) {
  TempDir dir;
  std::map<std::string, std::size_t> hits;
  for (const char* policy : {"lru", "frequency"}) {
    const nlohmann::json result =
        run_replay(fmt::format("--synthetic 2000 --device-blocks 0 --host-blocks 200 --disk-blocks 0 --block-bytes 64 "
                               "--policy {} --disk-dir {}", policy, dir.path()));
    ASSERT_TRUE(result.is_object());
    hits[policy] = result["hits"]["host"].get<std::size_t>();
    EXPECT_LE(hits[policy], result["offline_bound"]["belady_hits"].get<std::size_t>());
  }
  EXPECT_GT(hits["frequency"], hits["lru"]);
}

TEST(Replay, DefaultsRunAndBadTracesAreNamedErrors) {
  TempDir dir;
  const nlohmann::json result = run_replay("--synthetic 300 --disk-dir " + dir.path());
  ASSERT_TRUE(result.is_object());
  EXPECT_EQ(result["corrupt_blocks"].get<std::size_t>(), 0u);
  EXPECT_GT(result["offline_bound"]["belady_hits"].get<std::size_t>(), 0u);
  const std::string bad = dir.path() + "/bad.jsonl";
  std::ofstream(bad) << "{\"timestamp\": 1, \"hash_ids\": [1, 2]}\n{\"timestamp\": 2, \"hash_ids\": [1, -3]}\n";
  const auto [output, status] = run_command(std::string(KVBM_CLI_PATH) + " replay --trace " + bad + " 2>&1");
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("line 2"), std::string::npos) << output;
  EXPECT_NE(output.find("hash_ids"), std::string::npos) << output;
}

// --policy all: one replay per policy, each checked byte for byte, each with its share of the
// same offline bound; the plot names every policy. An unknown policy is refused by name.
TEST(Replay, EveryPolicyInOneCallWithItsShareOfTheBoundAndAPlot) {
  TempDir dir;
  const std::string plot = dir.path() + "/policies.svg";
  const nlohmann::json result = run_replay(fmt::format(
      "--workload agentic --synthetic 150 --device-blocks 0 --host-blocks 120 --disk-blocks 400 --block-bytes 64 "
      "--sequential --policy all --plot {} --disk-dir {}", plot, dir.path()));
  ASSERT_TRUE(result.is_object());
  ASSERT_EQ(result["runs"].size(), all_eviction_policies().size());
  std::set<std::size_t> bounds;
  for (const auto& run : result["runs"]) {
    SCOPED_TRACE(run["policy"].get<std::string>());
    EXPECT_EQ(run["trace"], "agentic");
    EXPECT_EQ(run["corrupt_blocks"].get<std::size_t>(), 0u);
    EXPECT_GT(run["hits"]["host"].get<std::size_t>(), 0u);
    bounds.insert(run["offline_bound"]["belady_hits"].get<std::size_t>());
    EXPECT_LE(run["offline_bound"]["policy_hits"].get<std::size_t>(), run["offline_bound"]["belady_hits"].get<std::size_t>());
  }
  EXPECT_EQ(bounds.size(), 1u) << "every policy is measured against the same bound";
  std::ifstream file(plot);
  const std::string svg((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(svg.starts_with("<svg"));
  for (EvictionPolicyKind kind : all_eviction_policies()) EXPECT_NE(svg.find(std::string(to_string(kind))), std::string::npos);
  const auto [output, status] = run_command(std::string(KVBM_CLI_PATH) + " replay --policy newest --disk-dir " + dir.path() + " 2>&1");
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("newest"), std::string::npos) << output;
}

}  // namespace
}  // namespace kvbm::testing
