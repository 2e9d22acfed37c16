// kvbm: the command line of the KV-cache block manager.
#include <iostream>
#include <vector>

#include "commands.hpp"
#include "kvbm/common/error.hpp"
#include "kvbm/common/log.hpp"
#include "kvbm/config/environment.hpp"

int main(int argc, char** argv) {
  CLI::App app{"kvbm: KV-cache block manager and transfer engine"};
  app.require_subcommand(1);
  const std::vector<kvbm::tools::Command> commands = {
      kvbm::tools::add_info_command(app),
      kvbm::tools::add_plan_command(app),
      kvbm::tools::add_bench_command(app),
      kvbm::tools::add_worker_command(app),
      kvbm::tools::add_leader_command(app),
      kvbm::tools::add_replay_command(app),
      kvbm::tools::add_remote_target_command(app),
      kvbm::tools::add_keygen_command(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  // Whatever goes wrong ends in one line on stderr and exit status 1, never an abort.
  try {
    kvbm::set_log_level(kvbm::environment::log_level());  // every command refuses a bad KVBM_LOG
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
  } catch (...) {
    std::cerr << "kvbm: " << kvbm::current_exception_as_error("kvbm").what() << '\n';
    return 1;
  }
  return 1;
}
