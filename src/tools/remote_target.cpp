// `kvbm remote-target` (hidden; started by `kvbm bench --remote`): a remote agent exporting one
// layout per block size in memory UCX allocates, `--bytes` each, its metadata printed (hex) on one line;
// it serves until its standard input ends, so that it never outlives the bench.
#include <iostream>

#include "commands.hpp"
#include "distributed/remote_service.hpp"
#include "kvbm/remote/remote_agent.hpp"

namespace kvbm::tools {

Command add_remote_target_command(CLI::App& app) {
  auto* command = app.add_subcommand("remote-target", "The peer of kvbm bench --remote");
  command->group("");  // not listed: the bench starts it
  struct Options {
    std::string transports = "tcp";
    std::vector<std::size_t> sizes;
    std::size_t bytes = 0;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--transports", options->transports)->required();
  command->add_option("--sizes", options->sizes)->required()->delimiter(',');
  command->add_option("--bytes", options->bytes)->required()->check(CLI::PositiveNumber);
  return {command, [options] {
    RemoteAgent agent({.name = "bench-target", .transports = options->transports});
    std::vector<LayoutPtr> layouts;
    for (std::size_t size : options->sizes) {
      const LayoutConfig config{.num_blocks = std::max<std::size_t>(1, options->bytes / size), .num_layers = 1,
                                .outer_dim = 1, .page_size = 1, .inner_dim = size, .dtype_bytes = 1};
      layouts.push_back(agent.allocate_exported(config, LayoutForm::FullyContiguous).first);
    }
    std::cout << to_hex(agent.metadata()) << std::endl;
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    return 0;
  }};
}

}  // namespace kvbm::tools
