#pragma once
// The `kvbm` command line: each subcommand registers its options on the app and returns the
// function that runs it after parsing. Runners return the process exit code.
#include <CLI/CLI.hpp>

#include <functional>

namespace kvbm::tools {

using Runner = std::function<int()>;

struct Command {
  CLI::App* app;  // the subcommand, to ask whether it was parsed
  Runner run;
};

Command add_info_command(CLI::App& app);
Command add_plan_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_worker_command(CLI::App& app);
Command add_leader_command(CLI::App& app);
Command add_replay_command(CLI::App& app);
Command add_remote_target_command(CLI::App& app);
Command add_keygen_command(CLI::App& app);

}  // namespace kvbm::tools
