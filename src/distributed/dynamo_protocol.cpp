#include "kvbm/distributed/dynamo_protocol.hpp"

#include "common/make_error.hpp"

namespace kvbm::dynamo {
namespace {

constexpr unsigned char kU16 = 251;
constexpr unsigned char kU32 = 252;
constexpr unsigned char kU64 = 253;

void append_le(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i, value >>= 8) out.push_back(static_cast<char>(value & 0xff));
}

void no_leftovers(std::string_view rest, std::string_view what) {
  if (!rest.empty()) {
    throw make_error(ErrorCode::InvalidArgument, "{}: {} bytes left over after the struct", what, rest.size());
  }
}

}  // namespace

void append_varint(std::string& out, std::uint64_t value) {
  if (value < kU16) {
    out.push_back(static_cast<char>(value));
  } else if (value <= 0xffff) {
    out.push_back(static_cast<char>(kU16));
    append_le(out, value, 2);
  } else if (value <= 0xffffffff) {
    out.push_back(static_cast<char>(kU32));
    append_le(out, value, 4);
  } else {
    out.push_back(static_cast<char>(kU64));
    append_le(out, value, 8);
  }
}

std::uint64_t read_varint(std::string_view& bytes, std::string_view field) {
  if (bytes.empty()) throw make_error(ErrorCode::InvalidArgument, "bincode {}: no bytes left", field);
  const auto tag = static_cast<unsigned char>(bytes.front());
  bytes.remove_prefix(1);
  if (tag < kU16) return tag;
  const int width = tag == kU16 ? 2 : tag == kU32 ? 4 : tag == kU64 ? 8 : 0;
  if (width == 0) {
    throw make_error(ErrorCode::InvalidArgument, "bincode {}: tag {} is not an unsigned 64-bit integer's", field, tag);
  }
  if (bytes.size() < static_cast<std::size_t>(width)) {
    throw make_error(ErrorCode::InvalidArgument, "bincode {}: {} bytes after tag {}, need {}", field, bytes.size(), tag, width);
  }
  std::uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  bytes.remove_prefix(static_cast<std::size_t>(width));
  const std::uint64_t smallest = tag == kU16 ? kU16 : tag == kU32 ? 0x10000 : 0x100000000ull;
  if (value < smallest) {
    throw make_error(ErrorCode::InvalidArgument, "bincode {}: {} encoded in {} bytes, longer than it needs", field, value, width);
  }
  return value;
}

std::string encode(const WorkerMetadata& metadata) {
  std::string out;
  append_varint(out, metadata.num_device_blocks);
  append_varint(out, metadata.bytes_per_block);
  return out;
}

std::string encode(const LeaderMetadata& metadata) {
  std::string out;
  append_varint(out, metadata.num_host_blocks);
  append_varint(out, metadata.num_disk_blocks);
  return out;
}

WorkerMetadata decode_worker_metadata(std::string_view bytes) {
  WorkerMetadata metadata;
  metadata.num_device_blocks = read_varint(bytes, "worker_metadata.num_device_blocks");
  metadata.bytes_per_block = read_varint(bytes, "worker_metadata.bytes_per_block");
  no_leftovers(bytes, "worker_metadata");
  return metadata;
}

LeaderMetadata decode_leader_metadata(std::string_view bytes) {
  LeaderMetadata metadata;
  metadata.num_host_blocks = read_varint(bytes, "leader_metadata.num_host_blocks");
  metadata.num_disk_blocks = read_varint(bytes, "leader_metadata.num_disk_blocks");
  no_leftovers(bytes, "leader_metadata");
  return metadata;
}

}  // namespace kvbm::dynamo
