#pragma once
// The one place kvbm reads environment variables: it maps them onto the options the library
// takes from its caller, for the command line (and any program that wants the same settings).
// Dynamo's names where Dynamo has one (DYN_KVBM_MAX_TRANSFER_BATCH_SIZE,
// DYN_KVBM_MAX_CONCURRENT_TRANSFERS), kvbm's own otherwise. A variable that is unset leaves the
// option's default; one that is set but malformed or out of range is InvalidArgument naming the
// variable and its value.
#include <cstdint>
#include <string>
#include <vector>

#include "kvbm/distributed/leader.hpp"
#include "kvbm/distributed/worker.hpp"
#include "kvbm/transfer/transfer_context.hpp"

namespace kvbm::environment {

// One variable as it applies now.
struct Setting {
  std::string name;
  std::string value;          // effective, as text
  bool from_environment;      // set in the environment; else the option's default
  std::string meaning;
};

[[nodiscard]] TransferConfig transfer_config();
// The worker's and leader's options beside what the command line names (endpoint, rank, ...).
[[nodiscard]] WorkerOptions worker_options(WorkerOptions given);
[[nodiscard]] LeaderOptions leader_options(LeaderOptions given);
// Dynamo's deployment variables, so that kvbm's worker and leader start where Dynamo's would.
struct DynamoSettings {
  std::string host;            // DYN_KVBM_LEADER_ZMQ_HOST
  int pub_port = 0;            // DYN_KVBM_LEADER_ZMQ_PUB_PORT: the leader's messages
  int ack_port = 0;            // DYN_KVBM_LEADER_ZMQ_ACK_PORT: the workers' replies
  double cpu_cache_gb = 0;     // DYN_KVBM_CPU_CACHE_GB: host pool size (0: none)
  double disk_cache_gb = 0;    // DYN_KVBM_DISK_CACHE_GB: disk pool size (0: none)
  std::string disk_cache_dir;  // DYN_KVBM_DISK_CACHE_DIR (empty: not set)
  [[nodiscard]] std::string pub_endpoint() const;
  [[nodiscard]] std::string ack_endpoint() const;
  // Blocks of `bytes_per_block` that `gb` GiB hold.
  [[nodiscard]] static std::uint64_t blocks(double gb, std::uint64_t bytes_per_block);
};
[[nodiscard]] DynamoSettings dynamo_settings();

[[nodiscard]] std::string log_level();  // KVBM_LOG (checked by set_log_level)
[[nodiscard]] std::string disk_dir();   // KVBM_DISK_DIR: where disk pools and bench files go

// Every variable kvbm reads, with its effective value and where it came from (`kvbm info
// --config`). Throws like the readers above for a malformed value.
[[nodiscard]] std::vector<Setting> describe();

}  // namespace kvbm::environment
