#include "distributed/remote_service.hpp"

#include <limits>

#include "common/json_input.hpp"
#include "common/make_error.hpp"
#include "distributed/handler_data.hpp"
#include "kvbm/distributed/protocol.hpp"

namespace kvbm {
namespace {

using protocol::kRemoteImport;
using protocol::kRemoteMetadata;
using protocol::kRemoteTransfer;
// Metadata of the most layouts and regions remote/agent_metadata.hpp accepts is far smaller.
constexpr std::size_t kMaxMetadataHexBytes = 8 << 20;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::vector<std::size_t> block_indices(const json_input::json& object, const char* name, const std::string& what,
                                       std::size_t max_blocks) {
  const auto* list = json_input::find(object, name);
  if (list == nullptr || !list->is_array() || list->size() > max_blocks) {
    throw make_error(ErrorCode::InvalidArgument, "{}: '{}' must be an array of at most {} block indices, got {}", what,
                     name, max_blocks, list ? json_input::describe(*list) : "nothing");
  }
  std::vector<std::size_t> blocks;
  for (std::size_t i = 0; i < list->size(); ++i) {
    if (!(*list)[i].is_number_unsigned()) {
      throw make_error(ErrorCode::InvalidArgument, "{}: {}[{}] must be a block index, got {}", what, name, i,
                       json_input::describe((*list)[i]));
    }
    blocks.push_back((*list)[i].get<std::size_t>());
  }
  return blocks;
}

}  // namespace

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 15]);
  }
  return hex;
}

std::string from_hex(std::string_view hex, std::string_view what) {
  if (hex.size() % 2 != 0) throw make_error(ErrorCode::InvalidArgument, "{}: odd hex length {}", what, hex.size());
  std::string bytes(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < hex.size(); ++i) {
    const int digit = hex_digit(hex[i]);
    if (digit < 0) throw make_error(ErrorCode::InvalidArgument, "{}: '{}' at {} is not a hex digit", what, printable(hex.substr(i, 1)), i);
    bytes[i / 2] = static_cast<char>(i % 2 == 0 ? digit << 4 : bytes[i / 2] | digit);
  }
  return bytes;
}

RemoteService::RemoteService(RemoteAgentOptions options, const BlockTransferHandler& pools, std::size_t max_block_pairs)
    : agent_(options), max_block_pairs_(max_block_pairs) {
  // A pool the worker was not given is not exported; a pool that cannot be exported is an error.
  const auto configured = [&](BlockTransferPool which) -> LayoutPtr {
    try {
      return pools.pool(which);
    } catch (const Error&) {
      return nullptr;
    }
  };
  host_ = configured(BlockTransferPool::Host);
  if (host_) host_id_ = agent_.export_layout(host_);
  if (options.capabilities.allow_gpu_rdma) device_ = configured(BlockTransferPool::Device);
  if (device_) device_id_ = agent_.export_layout(device_);
}

bool RemoteService::handles(std::string_view name) { return name == kRemoteMetadata || name == kRemoteImport || name == kRemoteTransfer; }

const LayoutPtr& RemoteService::pool(BlockTransferPool which) const {
  static const LayoutPtr none;
  const LayoutPtr& layout = which == BlockTransferPool::Host ? host_ : which == BlockTransferPool::Device ? device_ : none;
  if (!layout) {
    throw make_error(ErrorCode::InvalidArgument, "the {} pool cannot take part in a remote transfer here",
                     to_string(which));
  }
  return layout;
}

std::string RemoteService::answer(std::string_view name, std::string_view data) {
  if (name == kRemoteMetadata) {
    json_input::json layouts = json_input::json::object();
    if (host_id_) layouts["host"] = *host_id_;
    if (device_id_) layouts["device"] = *device_id_;
    return json_input::dump({{"metadata", to_hex(agent_.metadata())}, {"layouts", layouts}});
  }
  const auto object = json_input::parse_object(data, "kvbm.remote_import data");
  const std::string hex = json_input::required_string(object, "metadata", "kvbm.remote_import data", kMaxMetadataHexBytes);
  return json_input::dump({{"peer", agent_.import_peer(from_hex(hex, "kvbm.remote_import metadata"))}});
}

TransferHandle RemoteService::start_transfer(std::string_view data) {
  const std::string what = "kvbm.remote_transfer data";
  const auto list = handler_data::read_block_list(data, kRemoteTransfer, max_block_pairs_);
  const auto object = json_input::parse_object(data, what);
  const std::string direction = json_input::required_string(object, "direction", what, 8);
  if (direction != "write" && direction != "read") {
    throw make_error(ErrorCode::InvalidArgument, "{}: direction '{}' (write or read)", what, printable(direction));
  }
  const std::string peer = json_input::required_string(object, "peer", what, kMaxAgentNameBytes);
  const std::uint64_t layout = json_input::required_u64(object, "layout", what);
  if (layout > std::numeric_limits<std::uint32_t>::max()) {
    throw make_error(ErrorCode::InvalidArgument, "{}: layout {} is not a layout id", what, layout);
  }
  const auto remote_blocks = block_indices(object, "remote_blocks", what, max_block_pairs_);
  if (remote_blocks.size() != list.blocks.size()) {
    throw make_error(ErrorCode::InvalidArgument, "{}: {} blocks but {} remote_blocks", what, list.blocks.size(),
                     remote_blocks.size());
  }
  const std::string notification =
      json_input::optional_string(object, "notification", what, kMaxNotificationBytes).value_or("");
  const LayoutPtr& local = pool(list.pool);
  std::vector<BlockPair> pairs;
  for (std::size_t i = 0; i < remote_blocks.size(); ++i) {
    pairs.emplace_back(direction == "write" ? BlockPair{list.blocks[i], remote_blocks[i]}
                                            : BlockPair{remote_blocks[i], list.blocks[i]});
  }
  const auto id = static_cast<std::uint32_t>(layout);
  return direction == "write" ? agent_.write(local, peer, id, pairs, notification) : agent_.read(peer, id, local, pairs);
}

}  // namespace kvbm
