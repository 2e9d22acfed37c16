#pragma once
// The one place kvbm reads environment variables: it maps them onto the options the library
// takes from its caller, for the command line (and any program that wants the same settings).
// Dynamo's names where Dynamo has one (DYN_KVBM_MAX_TRANSFER_BATCH_SIZE,
// DYN_KVBM_MAX_CONCURRENT_TRANSFERS), kvbm's own otherwise. A variable that is unset leaves the
// option's default; one that is set but malformed or out of range is InvalidArgument naming the
// variable and its value.
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
[[nodiscard]] std::string log_level();  // KVBM_LOG (checked by set_log_level)
[[nodiscard]] std::string disk_dir();   // KVBM_DISK_DIR: where disk pools and bench files go

// Every variable kvbm reads, with its effective value and where it came from (`kvbm info
// --config`). Throws like the readers above for a malformed value.
[[nodiscard]] std::vector<Setting> describe();

}  // namespace kvbm::environment
