#pragma once
// An agent's metadata as bytes: what a peer needs to reach the layouts it exported. Decoding
// treats the bytes as hostile: every length, count, size and kind is checked, and a layout's
// regions must be large enough for the shape it declares, so that a transfer checked against
// the shape stays inside what the peer registered.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/remote/remote_agent.hpp"

namespace kvbm::remote {

struct ExportedRegion {
  std::uint64_t address = 0;  // in the exporting process
  std::uint64_t bytes = 0;
  std::string remote_key;  // UCX packed rkey
};

struct ExportedLayout {
  RemoteLayoutInfo info;
  std::uint64_t base_offset = 0;
  std::vector<ExportedRegion> regions;  // one (fully contiguous) or one per layer
};

struct AgentMetadata {
  std::string name;
  std::string worker_address;  // UCX worker address
  std::vector<ExportedLayout> layouts;
};

inline constexpr std::size_t kMaxWorkerAddressBytes = 64 << 10;
inline constexpr std::size_t kMaxRemoteKeyBytes = 16 << 10;
inline constexpr std::size_t kMaxExportedLayouts = 1024;
inline constexpr std::size_t kMaxRegionsPerLayout = 4096;

[[nodiscard]] std::string encode(const AgentMetadata& metadata);
// Throws InvalidArgument naming the first field out of bounds or inconsistent.
[[nodiscard]] AgentMetadata decode(std::string_view bytes);

// Throws InvalidArgument when `name` is empty, too long or not printable ASCII.
void check_agent_name(std::string_view name);

}  // namespace kvbm::remote
