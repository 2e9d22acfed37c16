// `kvbm replay`: runs a request trace through the block manager with real bytes. A block no
// tier holds is "computed": bytes derived from its hash id are written into the top tier and
// registered. Every onboarded block is checked against its hash id's bytes.
#include <fmt/format.h>

#include <array>
#include <atomic>
#include <cstring>
#include <optional>
#include <chrono>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common/make_error.hpp"
#include "kvbm/config/environment.hpp"
#include "kvbm/manager/block_manager.hpp"
#include "kvbm/manager/metrics_server.hpp"
#include "layout/chunk_io.hpp"
#include "platform/cuda_runtime.hpp"
#include "replay_bound.hpp"
#include "replay_report.hpp"
#include "replay_trace.hpp"

namespace kvbm::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct ReplayOptions {
  std::string trace;
  std::size_t synthetic = 2000;
  long device_blocks = -1;  // -1: 1024 with a GPU, else none
  std::size_t host_blocks = 1024;
  std::size_t disk_blocks = 8192;
  std::string disk_dir = environment::disk_dir();
  std::size_t block_bytes = 16384;
  std::string policy = "lru";  // or "all"
  std::string workload = "chat";
  std::string plot;
  std::uint32_t disk_admission = 1;
  bool sequential = false;
  double speed = 1.0;
  std::size_t concurrency = 8;
  int metrics_port = -1;  // -1: no HTTP server
  bool json = false;
};

// What a request did.
struct RequestCounts {
  std::size_t blocks = 0;
  std::array<std::size_t, 3> hits{};  // by Tier
  std::size_t verified = 0;
  std::size_t corrupt = 0;
  std::size_t failed_onboards = 0;
  std::size_t uncached = 0;  // computed but left out: the top tier was all held
};

// The bytes of hash id `id`'s block: a stream seeded by the id, so any copy can be checked.
Bytes block_bytes_of(std::uint64_t id, std::size_t size) {
  std::mt19937_64 rng(id * 0x9e3779b97f4a7c15ull + 1);
  Bytes bytes(size);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const std::uint64_t word = rng();
    std::memcpy(bytes.data() + i, &word, 8);
  }
  for (; i < size; ++i) bytes[i] = static_cast<std::byte>(rng());
  return bytes;
}

class Replayer {
 public:
  Replayer(BlockManager& manager, bool sequential) : manager_(manager), sequential_(sequential) {
    top_ = manager.pool(manager.top_tier())->layout();
    bytes_ = block_bytes(*top_);
  }

  // One request: find its cached prefix, onboard what lies below the top tier, compute the rest,
  // hold everything until the end (with --sequential, until its write-through has finished),
  // then release tail first.
  RequestCounts run(const TraceRequest& request) {
    RequestCounts counts;
    counts.blocks = request.blocks.size();
    const std::vector<SequenceHash> hashes(request.blocks.begin(), request.blocks.end());
    PrefixMatch match = manager_.match(hashes);
    const Tier top = manager_.top_tier();
    std::vector<std::size_t> lower;  // positions in the match below the top tier
    for (std::size_t i = 0; i < match.size(); ++i) {
      if (match.blocks[i].tier() != top) lower.push_back(i);
    }
    std::vector<BlockHandle> destinations = manager_.allocate(lower.size());
    if (destinations.size() < lower.size()) {
      // No room for all of them: the prefix ends where the copies must stop (tail released first).
      const std::size_t cut = lower[destinations.size()];
      while (match.blocks.size() > cut) match.blocks.pop_back();
      lower.resize(destinations.size());
    }
    std::vector<BlockHandle> held;
    held.reserve(hashes.size());
    for (std::size_t i = 0, next = 0; i < match.size(); ++i) {
      ++counts.hits[static_cast<std::size_t>(match.blocks[i].tier())];
      held.push_back(match.blocks[i].tier() == top ? match.blocks[i] : destinations[next++]);
    }
    std::size_t prefix = match.size();
    if (!lower.empty()) {
      // The onboard takes the match: its holds below the top tier end before its copies are
      // registered, whatever the timing (the top-tier holds are in `held`).
      const Status status = manager_.onboard(std::move(match), destinations).wait();
      destinations.clear();  // `held` holds them now, for the release in order
      if (status.ok()) {
        for (std::size_t position : lower) {
          const bool same = read_block(*top_, held[position].block()) == block_bytes_of(hashes[position], bytes_);
          ++(same ? counts.verified : counts.corrupt);
        }
      } else {
        // Counted, and the prefix ends before the first block that was to come from below.
        ++counts.failed_onboards;
        prefix = lower.front();
        held.resize(prefix);
      }
    }
    match = {};
    if (sequential_) manager_.flush_offloads();
    std::vector<BlockHandle> computed = manager_.allocate(hashes.size() - prefix);
    counts.uncached = hashes.size() - prefix - computed.size();
    for (std::size_t i = 0; i < computed.size(); ++i) write_block(*top_, computed[i].block(), block_bytes_of(hashes[prefix + i], bytes_));
    (void)manager_.register_blocks(computed, std::span(hashes).subspan(prefix, computed.size()));
    held.insert(held.end(), computed.begin(), computed.end());
    computed.clear();
    if (sequential_) manager_.flush_offloads();
    while (!held.empty()) held.pop_back();  // tail first
    return counts;
  }

 private:
  BlockManager& manager_;
  bool sequential_;
  LayoutPtr top_;
  std::size_t bytes_ = 0;
};

LayoutPtr tier_layout(std::size_t blocks, std::size_t block_bytes, StorageKind kind, const std::string& dir) {
  if (blocks == 0) return nullptr;
  // One chunk a block: the replay is about which blocks move, not how they are laid out.
  const LayoutConfig config{.num_blocks = blocks, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = block_bytes,
                            .dtype_bytes = 1};
  DiskFileOptions disk;
  disk.directory = dir;
  return Layout::allocate(config, kind, LayoutForm::FullyContiguous, LayerOrder::BlockContiguous, disk);
}

double gbps(const TransferTotals& totals) { return totals.seconds > 0 ? static_cast<double>(totals.bytes) / totals.seconds / 1e9 : 0; }

// The trace of --trace, or the built-in workload.
Trace load_trace(const ReplayOptions& options) {
  if (!options.trace.empty()) return read_trace(options.trace);
  if (options.workload == "agentic") return agentic_trace(options.synthetic, 20261207);
  return synthetic_trace(options.synthetic, 20261130);
}

// One policy's replay of `trace`, as replay's JSON object; `belady` is the offline bound's
// top-tier hits (sequential runs only).
nlohmann::ordered_json replay_policy(const ReplayOptions& options, const Trace& trace, std::size_t device_blocks,
                                     EvictionPolicyKind policy, std::optional<std::size_t> belady) {
  const bool gpu = cuda::device_count() > 0;
  const auto context = std::make_shared<TransferContext>(environment::transfer_config());
  const ManagerTiers tiers{tier_layout(device_blocks, options.block_bytes, StorageKind::device(0), options.disk_dir),
                           tier_layout(options.host_blocks, options.block_bytes,
                                       gpu ? StorageKind::pinned() : StorageKind::system(),
                                       options.disk_dir),
                           tier_layout(options.disk_blocks, options.block_bytes, StorageKind::disk(0), options.disk_dir)};
  ManagerOptions manager_options;
  manager_options.policy = policy;
  manager_options.tokens_per_block = trace.tokens_per_block;
  manager_options.disk_admission_lookups = options.disk_admission;
  // Sequential: one block per write-through copy, so that what each copy evicts below does not
  // depend on how a batch happened to form.
  if (options.sequential) manager_options.offload_batch_blocks = 1;
  BlockManager manager(tiers, context, manager_options);
  std::optional<MetricsServer> metrics_server;
  if (options.metrics_port >= 0) {
    metrics_server.emplace(options.metrics_port, [&manager] { return manager.metrics().prometheus(); });
    std::cerr << fmt::format("replay: metrics at http://127.0.0.1:{}/metrics\n", metrics_server->port());
  }
  Replayer replayer(manager, options.sequential);

  RequestCounts total;
  std::mutex total_mutex;
  const auto add = [&](const RequestCounts& counts) {
    std::lock_guard lock(total_mutex);
    total.blocks += counts.blocks;
    for (std::size_t t = 0; t < 3; ++t) total.hits[t] += counts.hits[t];
    total.verified += counts.verified;
    total.corrupt += counts.corrupt;
    total.failed_onboards += counts.failed_onboards;
    total.uncached += counts.uncached;
  };
  std::atomic<std::size_t> done{0};
  const auto progress = [&] {
    const std::size_t finished = ++done;
    if (finished % 500 == 0 || finished == trace.requests.size()) {
      std::cerr << fmt::format("\rreplay {}: {}/{} requests", to_string(policy), finished, trace.requests.size()) << std::flush;
    }
  };
  const auto start = Clock::now();
  if (options.sequential) {
    for (const TraceRequest& request : trace.requests) {
      add(replayer.run(request));
      progress();
    }
  } else {
    // Requests start at their timestamps (divided by --speed) on up to --concurrency threads.
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> threads;
    std::optional<Error> failure;
    std::mutex failure_mutex;
    for (std::size_t t = 0; t < std::max<std::size_t>(1, options.concurrency); ++t) {
      threads.emplace_back([&] {
        for (std::size_t i; (i = next++) < trace.requests.size();) {
          const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(trace.requests[i].start_seconds / options.speed));
          std::this_thread::sleep_until(due);
          try {
            add(replayer.run(trace.requests[i]));
          } catch (...) {
            std::lock_guard lock(failure_mutex);
            if (!failure) failure = current_exception_as_error("replay request");
          }
          progress();
        }
      });
    }
    for (auto& thread : threads) thread.join();
    if (failure) throw *failure;
  }
  manager.flush_offloads();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  std::cerr << '\n';

  const ManagerMetrics metrics = manager.metrics();
  const std::size_t hits = total.hits[0] + total.hits[1] + total.hits[2];
  nlohmann::ordered_json out{
      {"trace", trace.format},
      {"policy", std::string(to_string(policy))},
      {"sequential", options.sequential},
      {"tiers", {{"device", device_blocks}, {"host", options.host_blocks}, {"disk", options.disk_blocks}}},
      {"block_bytes", options.block_bytes},
      {"requests", trace.requests.size()},
      {"blocks", total.blocks},
      {"hits", {{"device", total.hits[0]}, {"host", total.hits[1]}, {"disk", total.hits[2]}}},
      {"misses", total.blocks - hits},
      {"uncached_blocks", total.uncached},
      {"verified_blocks", total.verified},
      {"corrupt_blocks", total.corrupt},
      {"failed_onboards", total.failed_onboards},
      {"offload_dropped_blocks", metrics.offload_dropped_blocks},
      {"admission_refused_blocks", metrics.policy_admission_refused_blocks},
      {"prefill_tokens_saved", hits * trace.tokens_per_block},
      {"wall_seconds", wall}};
  for (const auto& [name, totals] : {std::pair{"offloaded", &metrics.offloads}, std::pair{"onboarded", &metrics.onboards}}) {
    nlohmann::ordered_json pairs = nlohmann::ordered_json::object();
    for (const auto& [pair, t] : *totals) {
      pairs[fmt::format("{}->{}", to_string(pair.first), to_string(pair.second))] = {
          {"blocks", t.blocks}, {"bytes", t.bytes}, {"failed_blocks", t.failed_blocks}, {"gbps", gbps(t)}};
    }
    out[name] = pairs;
  }
  if (belady) {
    const std::size_t top_blocks = device_blocks > 0 ? device_blocks : options.host_blocks;
    const std::size_t policy_hits = top_tier_hits(trace, top_blocks, policy);
    out["offline_bound"] = {{"model", "top tier alone"},
                            {"belady_hits", *belady},
                            {"policy_hits", policy_hits},
                            {"share", *belady > 0 ? static_cast<double>(policy_hits) / static_cast<double>(*belady) : 1.0}};
  }
  return out;
}

// One run's text, as replay prints it for a single policy.
void print_run(const nlohmann::ordered_json& run) {
  const auto& tiers = run["tiers"];
  const std::size_t device = run["hits"]["device"], host = run["hits"]["host"], disk = run["hits"]["disk"];
  std::cout << fmt::format("kvbm replay: {} trace, {} requests, {} blocks of {} bytes; tiers device {} host {} disk {}; policy {}{}\n",
                           run["trace"].get<std::string>(), run["requests"].get<std::size_t>(), run["blocks"].get<std::size_t>(),
                           run["block_bytes"].get<std::size_t>(), tiers["device"].get<std::size_t>(),
                           tiers["host"].get<std::size_t>(), tiers["disk"].get<std::size_t>(), run["policy"].get<std::string>(),
                           run["sequential"].get<bool>() ? ", sequential" : "");
  std::cout << fmt::format("hits: device {} host {} disk {}; misses {}; prefill tokens saved {}\n", device, host, disk,
                           run["misses"].get<std::size_t>(), run["prefill_tokens_saved"].get<std::size_t>());
  std::cout << fmt::format("onboarded blocks verified {} corrupt {}; failed onboards {}; offloads dropped {}; wall {:.2f} s\n",
                           run["verified_blocks"].get<std::size_t>(), run["corrupt_blocks"].get<std::size_t>(),
                           run["failed_onboards"].get<std::size_t>(), run["offload_dropped_blocks"].get<std::size_t>(),
                           run["wall_seconds"].get<double>());
  for (const char* name : {"offloaded", "onboarded"}) {
    for (const auto& [pair, entry] : run[name].items()) {
      std::cout << fmt::format("{} {:<14} {:>9} blocks {:>12} bytes {:>8.2f} GB/s\n", name, pair,
                               entry["blocks"].get<std::uint64_t>(), entry["bytes"].get<std::uint64_t>(),
                               entry["gbps"].get<double>());
    }
  }
  if (run.contains("offline_bound")) {
    const auto& b = run["offline_bound"];
    std::cout << fmt::format("offline bound (top tier alone): Belady {} hits, {} {} hits, share {:.3f}\n",
                             b["belady_hits"].get<std::size_t>(), run["policy"].get<std::string>(),
                             b["policy_hits"].get<std::size_t>(), b["share"].get<double>());
  }
}

int run_replay(const ReplayOptions& options) {
  if (options.block_bytes == 0) throw make_error(ErrorCode::InvalidArgument, "--block-bytes must be > 0");
  if (options.speed <= 0) throw make_error(ErrorCode::InvalidArgument, "--speed must be > 0");
  std::vector<EvictionPolicyKind> policies;
  if (options.policy == "all") {
    policies = all_eviction_policies();
  } else if (const auto kind = parse_eviction_policy(options.policy)) {
    policies.push_back(*kind);
  } else {
    throw make_error(ErrorCode::InvalidArgument, "--policy {}: not one of all, {}", printable(options.policy),
                     eviction_policy_names());
  }
  const Trace trace = load_trace(options);
  const bool gpu = cuda::device_count() > 0;
  const std::size_t device_blocks = options.device_blocks < 0 ? (gpu ? 1024 : 0) : static_cast<std::size_t>(options.device_blocks);
  if (device_blocks > 0 && !gpu) {
    throw make_error(ErrorCode::Unsupported, "--device-blocks {} needs a CUDA device: {}", device_blocks, cuda::unavailable_reason());
  }
  if (device_blocks == 0 && options.host_blocks == 0) {
    throw make_error(ErrorCode::InvalidArgument, "no top tier: --device-blocks and --host-blocks are both 0");
  }
  std::optional<std::size_t> belady;
  if (options.sequential) belady = top_tier_hits(trace, device_blocks > 0 ? device_blocks : options.host_blocks, std::nullopt);
  std::vector<nlohmann::ordered_json> runs;
  for (EvictionPolicyKind policy : policies) runs.push_back(replay_policy(options, trace, device_blocks, policy, belady));

  if (options.json) {
    if (runs.size() == 1) {
      std::cout << runs.front().dump(2) << '\n';
    } else {
      std::cout << nlohmann::ordered_json{{"runs", runs}}.dump(2) << '\n';
    }
  } else if (runs.size() == 1) {
    print_run(runs.front());
  } else {
    std::cout << fmt::format("kvbm replay: {} trace, {} requests; tiers device {} host {} disk {}{}\n", trace.format,
                             trace.requests.size(), device_blocks, options.host_blocks, options.disk_blocks,
                             options.sequential ? ", sequential" : "");
    print_policy_table(std::cout, runs);
  }
  const std::string title = fmt::format("kvbm replay: {} trace ({} requests), tiers device {} host {} disk {}", trace.format,
                                        trace.requests.size(), device_blocks, options.host_blocks, options.disk_blocks);
  if (!options.plot.empty()) write_policy_plot(options.plot, title, runs);
  for (const auto& run : runs) {
    if (run["corrupt_blocks"].get<std::size_t>() != 0 || run["failed_onboards"].get<std::size_t>() != 0) return 1;
  }
  return 0;
}

}  // namespace

Command add_replay_command(CLI::App& app) {
  auto* command = app.add_subcommand("replay", "Run a request trace through the block manager with real bytes");
  auto options = std::make_shared<ReplayOptions>();
  command->add_option("--trace", options->trace, "JSONL trace (Mooncake or Qwen-Bailian format)")->check(CLI::ExistingFile);
  command->add_option("--synthetic", options->synthetic, "Without --trace: requests of the built-in workload (--workload)")
      ->capture_default_str()->check(CLI::Range(std::size_t{1}, std::size_t{10000000}));
  command->add_option("--device-blocks", options->device_blocks, "Device tier blocks (default 1024 with a GPU, else 0)")
      ->check(CLI::Range(0L, 1L << 30));
  command->add_option("--host-blocks", options->host_blocks, "Host tier blocks")->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 30));
  command->add_option("--disk-blocks", options->disk_blocks, "Disk tier blocks")->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 30));
  command->add_option("--disk-dir", options->disk_dir, "Directory for the disk tier's file")->capture_default_str()
      ->check(CLI::ExistingDirectory);
  command->add_option("--block-bytes", options->block_bytes, "Bytes of each block")->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
  command->add_option("--policy", options->policy,
                      "Eviction policy of every tier (each tier has its own): " + eviction_policy_names() +
                          ", or all to compare them in one table")
      ->capture_default_str();
  command->add_option("--workload", options->workload, "Without --trace: the built-in chat or agentic workload")
      ->capture_default_str()->check(CLI::IsMember({"chat", "agentic"}));
  command->add_option("--plot", options->plot, "Also draw the policies' hits and shares of the bound as an SVG file");
  command->add_option("--disk-admission", options->disk_admission,
                      "A block goes on to disk once looked up this many times (1: every block)")
      ->capture_default_str()->check(CLI::Range(1u, 1000000u));
  command->add_flag("--sequential", options->sequential,
                    "One request at a time, each waiting for its write-through: deterministic, with the offline bound");
  command->add_option("--speed", options->speed, "Without --sequential: trace time runs this many times faster")->capture_default_str();
  command->add_option("--concurrency", options->concurrency, "Without --sequential: requests in flight at most")
      ->capture_default_str()->check(CLI::Range(std::size_t{1}, std::size_t{1024}));
  command->add_option("--metrics-port", options->metrics_port,
                      "Serve the manager's metrics (Prometheus text) at http://127.0.0.1:PORT/metrics while it runs")
      ->check(CLI::Range(0, 65535));
  command->add_flag("--json", options->json, "Print one JSON object");
  return {command, [options] { return run_replay(*options); }};
}

}  // namespace kvbm::tools
