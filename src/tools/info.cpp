// `kvbm info`: what this machine offers kvbm (GPUs, pinned memory, io_uring, O_DIRECT), or
// with --config the settings in effect.
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kvbm/config/environment.hpp"
#include "kvbm/transfer/system_probe.hpp"
#include "platform/cuda_runtime.hpp"

namespace kvbm::tools {
namespace {

// Every environment variable kvbm reads: its effective value and whether the environment set it.
int print_config(bool json) {
  const auto settings = environment::describe();
  if (json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& setting : settings) {
      out.push_back({{"name", setting.name},
                     {"value", setting.value},
                     {"source", setting.from_environment ? "environment" : "default"},
                     {"meaning", setting.meaning}});
    }
    std::cout << out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
    return 0;
  }
  for (const auto& setting : settings) {
    std::cout << fmt::format("{:<34} {:<12} {:<11} {}\n", setting.name, printable(setting.value, 60),
                             setting.from_environment ? "environment" : "default", setting.meaning);
  }
  return 0;
}

}  // namespace

Command add_info_command(CLI::App& app) {
  auto* command = app.add_subcommand("info", "Print the GPUs, pinned memory, io_uring and O_DIRECT support here");
  auto json = std::make_shared<bool>(false);
  auto directory = std::make_shared<std::string>(".");
  auto config = std::make_shared<bool>(false);
  command->add_flag("--json", *json, "Print JSON instead of text");
  command->add_flag("--config", *config, "Print the effective settings and where each value came from");
  command->add_option("--dir", *directory, "Directory whose O_DIRECT support to check")->check(CLI::ExistingDirectory);
  return {command, [json, directory, config] {
    if (*config) return print_config(*json);
    const auto devices = cuda::devices();
    const ProbeResult pinned = probe_pinned_memory();
    const ProbeResult uring = probe_io_uring();
    const ProbeResult direct = probe_o_direct(*directory);
    if (*json) {
      nlohmann::json out;
      out["cuda_built"] = cuda::built_with_cuda();
      out["devices"] = nlohmann::json::array();
      for (const auto& device : devices) {
        nlohmann::json entry;
        entry["ordinal"] = device.ordinal;
        entry["name"] = device.name;
        entry["memory_bytes"] = device.total_memory;
        entry["sm_count"] = device.sm_count;
        entry["compute_capability"] = fmt::format("{}.{}", device.compute_major, device.compute_minor);
        entry["pcie_generation"] = device.pcie_generation;
        entry["pcie_width"] = device.pcie_width;
        out["devices"].push_back(entry);
      }
      if (devices.empty()) out["devices_detail"] = cuda::unavailable_reason();
      const auto probe = [](const ProbeResult& result) {
        return nlohmann::json{{"usable", result.usable}, {"detail", result.detail}};
      };
      out["pinned_memory"] = probe(pinned);
      out["io_uring"] = probe(uring);
      out["o_direct"] = probe(direct);
      std::cout << out.dump(2) << '\n';
      return 0;
    }
    std::cout << "CUDA devices:";
    if (devices.empty()) std::cout << " none (" << cuda::unavailable_reason() << ")\n";
    else std::cout << '\n';
    for (const auto& device : devices) {
      std::cout << fmt::format("  [{}] {}  {:.1f} GiB  {} SMs  sm_{}{}  PCIe {}\n", device.ordinal, device.name,
                               static_cast<double>(device.total_memory) / (1ULL << 30), device.sm_count,
                               device.compute_major, device.compute_minor,
                               device.pcie_generation > 0
                                   ? fmt::format("Gen{} x{}", device.pcie_generation, device.pcie_width)
                                   : std::string("link unknown"));
    }
    const auto line = [](std::string_view name, const ProbeResult& result) {
      std::cout << fmt::format("{:<14} {}  ({})\n", name, result.usable ? "yes" : "no", result.detail);
    };
    line("pinned memory:", pinned);
    line("io_uring:", uring);
    line("O_DIRECT:", direct);
    return 0;
  }};
}

}  // namespace kvbm::tools
