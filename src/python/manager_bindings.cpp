// kvbm.BlockManager: device, host and disk tiers over one transfer context; prefix lookup of a
// token sequence's block hashes, onboarding, write-through offloads, and metrics as a dict.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <fmt/format.h>

#include "bindings.hpp"
#include "kvbm/manager/block_manager.hpp"
#include "kvbm/manager/sequence_hash.hpp"

namespace kvbm::python {
namespace {

// The manager and the context it works through; destroyed (it finishes queued offloads) with the
// GIL released.
struct PyManager {
  std::shared_ptr<TransferContext> context;
  std::unique_ptr<BlockManager> manager;
  ~PyManager() {
    nb::gil_scoped_release released;
    manager.reset();
    context.reset();
  }
};

LayoutPtr layout_of(const PyLayout* layout) { return layout != nullptr ? layout->layout : nullptr; }

nb::dict totals_dict(const std::map<std::pair<Tier, Tier>, TransferTotals>& totals) {
  nb::dict out;
  for (const auto& [tiers, t] : totals) {
    nb::dict entry;
    entry["transfers"] = t.transfers;
    entry["blocks"] = t.blocks;
    entry["bytes"] = t.bytes;
    entry["failed_blocks"] = t.failed_blocks;
    entry["seconds"] = t.seconds;
    out[fmt::format("{}->{}", to_string(tiers.first), to_string(tiers.second)).c_str()] = entry;
  }
  return out;
}

nb::dict metrics_dict(const ManagerMetrics& metrics) {
  nb::dict out;
  out["looked_up_blocks"] = metrics.looked_up_blocks;
  out["device_hits"] = metrics.device_hits;
  out["host_hits"] = metrics.host_hits;
  out["disk_hits"] = metrics.disk_hits;
  out["matched_tokens"] = metrics.matched_tokens;
  out["host_cache_hit_rate"] = metrics.host_cache_hit_rate();
  out["disk_cache_hit_rate"] = metrics.disk_cache_hit_rate();
  out["offload_dropped_blocks"] = metrics.offload_dropped_blocks;
  out["disk_admission_refused_blocks"] = metrics.disk_admission_refused_blocks;
  out["policy_admission_refused_blocks"] = metrics.policy_admission_refused_blocks;
  out["offload_queue_depth"] = metrics.offload_queue_depth;
  out["offloads"] = totals_dict(metrics.offloads);
  out["onboards"] = totals_dict(metrics.onboards);
  nb::dict tiers;
  for (const auto& [tier, stats] : metrics.tiers) {
    nb::dict entry;
    entry["capacity"] = stats.capacity;
    entry["free"] = stats.free;
    entry["held"] = stats.held;
    entry["cached"] = stats.cached;
    entry["registered"] = stats.registered;
    entry["evictions"] = stats.evictions;
    tiers[std::string(to_string(tier)).c_str()] = entry;
  }
  out["tiers"] = tiers;
  return out;
}

}  // namespace

void bind_manager(nb::module_& m) {
  m.def(
      "sequence_hashes",
      [](const std::vector<std::uint32_t>& tokens, std::size_t block_size, const std::string& salt) {
        return sequence_hashes(tokens, block_size, salt_hash(salt));
      },
      nb::arg("tokens"), nb::arg("block_size"), nb::kw_only(), nb::arg("salt") = "",
      "The chained hash of every full block of `tokens` (a trailing partial block has none).");

  nb::class_<BlockHandle>(m, "BlockHandle", "A hold on one block of a tier: it is not evicted while held.")
      .def_prop_ro("block", &BlockHandle::block)
      .def_prop_ro("tier", [](const BlockHandle& self) { return std::string(to_string(self.tier())); })
      .def_prop_ro("hash", &BlockHandle::hash)
      .def("__repr__", [](const BlockHandle& self) {
        return fmt::format("BlockHandle({} block {})", to_string(self.tier()), self.block());
      });

  nb::class_<PrefixMatch>(m, "PrefixMatch", "The longest cached prefix: each block from the highest tier holding it.")
      .def_ro("blocks", &PrefixMatch::blocks)
      .def_ro("device", &PrefixMatch::device)
      .def_ro("host", &PrefixMatch::host)
      .def_ro("disk", &PrefixMatch::disk)
      .def("__len__", &PrefixMatch::size);

  nb::class_<PyManager>(m, "BlockManager", "Device, host and disk tiers with prefix lookup, onboarding and write-through.")
      .def(
          "__init__",
          [](PyManager* self, PyContext& context, const PyLayout* device, const PyLayout* host, const PyLayout* disk,
             const std::string& policy,
             std::size_t tokens_per_block, std::size_t offload_queue_blocks, std::uint32_t disk_admission_lookups) {
            ManagerOptions options;
            const auto kind = parse_eviction_policy(policy);
            if (!kind) throw Error(ErrorCode::InvalidArgument, "policy='" + printable(policy) + "' is not one of " + eviction_policy_names());
            options.policy = *kind;
            options.tokens_per_block = tokens_per_block;
            options.offload_queue_blocks = offload_queue_blocks;
            options.disk_admission_lookups = disk_admission_lookups;
            ManagerTiers tiers{layout_of(device), layout_of(host), layout_of(disk)};
            new (self) PyManager{context.context, std::make_unique<BlockManager>(std::move(tiers), context.context, options)};
          },
          nb::arg("context"), nb::kw_only(), nb::arg("device").none() = nb::none(), nb::arg("host").none() = nb::none(),
          nb::arg("disk").none() = nb::none(), nb::arg("policy") = "lru", nb::arg("tokens_per_block") = 16,
          nb::arg("offload_queue_blocks") = ManagerOptions{}.offload_queue_blocks,
          nb::arg("disk_admission_lookups") = 1)
      .def_prop_ro("top_tier", [](const PyManager& self) { return std::string(to_string(self.manager->top_tier())); })
      .def(
          "match",
          [](PyManager& self, const std::vector<SequenceHash>& hashes) {
            nb::gil_scoped_release released;
            return self.manager->match(hashes);
          },
          nb::arg("hashes"), "The longest prefix of `hashes` some tier holds; the match holds its blocks.")
      .def(
          "allocate",
          [](PyManager& self, std::size_t count) {
            nb::gil_scoped_release released;
            return self.manager->allocate(count);
          },
          nb::arg("count"), "Up to `count` held top-tier blocks to write into (fewer when the rest are held).")
      .def(
          "register_blocks",
          [](PyManager& self, const std::vector<BlockHandle>& blocks, const std::vector<SequenceHash>& hashes,
             int priority) {
            nb::gil_scoped_release released;
            return self.manager->register_blocks(blocks, hashes, priority);
          },
          nb::arg("blocks"), nb::arg("hashes"), nb::arg("priority") = 0,
          "Registers top-tier blocks whose bytes are written and queues their write-through; returns how many were new.")
      .def(
          "onboard",
          [](PyManager& self, const PrefixMatch& match, const std::vector<BlockHandle>& destinations, int priority) {
            nb::gil_scoped_release released;
            return new PyHandle(self.manager->onboard(match, destinations, priority));
          },
          nb::arg("match"), nb::arg("destinations"), nb::arg("priority") = 0, nb::rv_policy::take_ownership,
          "Copies the match's blocks below the top tier into `destinations` and registers them there; a Handle.")
      .def(
          "flush_offloads",
          [](PyManager& self) {
            nb::gil_scoped_release released;
            self.manager->flush_offloads();
          },
          "Returns once every write-through queued so far has finished.")
      .def("metrics", [](const PyManager& self) { return metrics_dict(self.manager->metrics()); })
      .def("prometheus", [](const PyManager& self) { return self.manager->metrics().prometheus(); },
           "The metrics in Prometheus text format, under Dynamo's names.");
}

}  // namespace kvbm::python
