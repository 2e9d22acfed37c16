// `kvbm plan SRC DST`: the transfer plan the engine runs (seed 003's rules, with the blocking
// CUDA copies as the two hops they run as).
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kvbm/common/error.hpp"
#include "kvbm/transfer/strategy.hpp"

namespace kvbm::tools {

namespace {
struct PlanOptions {
  std::string src;
  std::string dst;
  bool remote_src = false;
  bool remote_dst = false;
  bool gds = false;
  bool gpu_rdma = false;
  bool json = false;
};
}  // namespace

Command add_plan_command(CLI::App& app) {
  auto* command = app.add_subcommand("plan", "Print the transfer plan kvbm chooses for SRC -> DST");
  auto options = std::make_shared<PlanOptions>();
  command->add_option("SRC", options->src, "system, pinned, device[:N] or disk[:N]")->required();
  command->add_option("DST", options->dst, "system, pinned, device[:N] or disk[:N]")->required();
  command->add_flag("--remote-src", options->remote_src, "The source is on another machine");
  command->add_flag("--remote-dst", options->remote_dst, "The destination is on another machine");
  command->add_flag("--gds", options->gds, "Allow GPUDirect Storage (device <-> disk directly)");
  command->add_flag("--gpu-rdma", options->gpu_rdma, "Allow GPU RDMA (device <-> network directly)");
  command->add_flag("--json", options->json, "Print JSON");
  return {command, [options] {
    try {
      const TransferCapabilities capabilities{options->gds, options->gpu_rdma};
      const StorageKind src = StorageKind::parse(options->src);
      const StorageKind dst = StorageKind::parse(options->dst);
      const TransferPlan plan =
          execution_plan(select_strategy(src, !options->remote_src, dst, !options->remote_dst, capabilities));
      std::cout << (options->json ? to_json(plan) : to_string(plan)) << '\n';
      return 0;
    } catch (const Error& error) {
      if (options->json) std::cout << nlohmann::json{{"error", error.message()}}.dump() << '\n';
      else std::cerr << "kvbm plan: " << error.message() << '\n';
      return 1;
    }
  }};
}

}  // namespace kvbm::tools
