// kvbm: the command line of the KV-cache block manager.
#include <iostream>
#include <vector>

#include "commands.hpp"
#include "kvbm/common/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"kvbm: KV-cache block manager and transfer engine"};
  app.require_subcommand(1);
  const std::vector<kvbm::tools::Command> commands = {
      kvbm::tools::add_info_command(app),
      kvbm::tools::add_plan_command(app),
      kvbm::tools::add_bench_command(app),
      kvbm::tools::add_worker_command(app),
      kvbm::tools::add_leader_command(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  try {
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
  } catch (const kvbm::Error& error) {
    std::cerr << "kvbm: " << error.what() << '\n';
    return 1;
  }
  return 1;
}
