#pragma once
// Dynamo 1.6's KVBM leader <-> worker protocol, where it differs from kvbm's (framing and the
// transfer request's JSON are shared; see protocol.hpp and wire.hpp). The handshake:
//   1. worker_metadata (no data): each worker answers [id, "worker_metadata", bincode of
//      {num_device_blocks, bytes_per_block}]; the leader repeats it until one round gets exactly
//      W answers.
//   2. leader_metadata (one frame, bincode of {num_host_blocks, num_disk_blocks}): workers ack at
//      once, then size their host and disk pools with those counts.
//   3. ping, every 500 ms: a worker acks once its pools are ready.
// Then transfer_blocks; a Dynamo worker acks [id] after every transfer, failed or not. bincode
// here is version 2's "standard" configuration: unsigned integers as variable-length little
// endian (< 251: one byte; else a tag 251/252/253 and 2/4/8 bytes).
#include <cstdint>
#include <string>
#include <string_view>

namespace kvbm::dynamo {

inline constexpr const char* kWorkerMetadata = "worker_metadata";
inline constexpr const char* kLeaderMetadata = "leader_metadata";
inline constexpr const char* kPing = "ping";

// Where Dynamo's processes meet unless told otherwise (DYN_KVBM_LEADER_ZMQ_HOST, _PUB_PORT,
// _ACK_PORT).
inline constexpr const char* kDefaultHost = "127.0.0.1";
inline constexpr int kDefaultPubPort = 56001;
inline constexpr int kDefaultAckPort = 56002;

struct WorkerMetadata {
  std::uint64_t num_device_blocks = 0;
  std::uint64_t bytes_per_block = 0;
  bool operator==(const WorkerMetadata&) const = default;
};

struct LeaderMetadata {
  std::uint64_t num_host_blocks = 0;
  std::uint64_t num_disk_blocks = 0;
  bool operator==(const LeaderMetadata&) const = default;
};

void append_varint(std::string& out, std::uint64_t value);
// Reads one varint from the front of `bytes` (advancing it). Throws InvalidArgument naming
// `field` for a truncated value, a tag no unsigned 64-bit integer uses, or a value encoded
// longer than it needs (bincode refuses those too).
[[nodiscard]] std::uint64_t read_varint(std::string_view& bytes, std::string_view field);

[[nodiscard]] std::string encode(const WorkerMetadata& metadata);
[[nodiscard]] std::string encode(const LeaderMetadata& metadata);
// Throw InvalidArgument naming the field, or the bytes left over after the struct.
[[nodiscard]] WorkerMetadata decode_worker_metadata(std::string_view bytes);
[[nodiscard]] LeaderMetadata decode_leader_metadata(std::string_view bytes);

}  // namespace kvbm::dynamo
