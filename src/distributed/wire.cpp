#include "kvbm/distributed/wire.hpp"

#include <charconv>
#include <limits>

#include <nlohmann/json.hpp>

#include "common/json_input.hpp"
#include "distributed/request_readers.hpp"
#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {
namespace {

using nlohmann::json;

[[noreturn]] void bad(std::string_view what) {
  throw make_error(ErrorCode::InvalidArgument, "bad BlockTransferRequest: {}", what);
}

}  // namespace

void too_many_pairs(std::size_t pairs, std::size_t max_block_pairs) {
  throw make_error(ErrorCode::InvalidArgument,
                   "bad BlockTransferRequest: {} block pairs, more than the {} allowed (KVBM_MAX_BLOCK_PAIRS)", pairs,
                   max_block_pairs);
}

namespace {

const json& field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end()) bad(fmt::format("missing field '{}'", name));
  return *it;
}

std::string string_field(const json& object, const char* name, std::string_view context) {
  const json& value = field(object, name);
  if (!value.is_string()) bad(fmt::format("{}'{}' must be a string, got {}", context, name, json_input::describe(value)));
  const auto& text = value.get_ref<const std::string&>();
  if (text.size() > kMaxConnectorIdBytes) {
    bad(fmt::format("{}'{}' is {} bytes long, more than the {} allowed", context, name, text.size(), kMaxConnectorIdBytes));
  }
  return text;
}

BlockTransferPool pool_field(const json& object, const char* name) {
  const std::string text = string_field(object, name, "");
  try {
    return parse_pool(text);
  } catch (const Error&) {
    bad(fmt::format("'{}' is '{}', not one of Device, Host, Disk", name, printable(text, 60)));
  }
}

std::vector<BlockPair> blocks_field(const json& object, std::size_t max_block_pairs) {
  const json& blocks = field(object, "blocks");
  if (!blocks.is_array()) bad(fmt::format("'blocks' must be an array, got {}", json_input::describe(blocks)));
  if (blocks.size() > max_block_pairs) too_many_pairs(blocks.size(), max_block_pairs);
  std::vector<BlockPair> pairs;
  pairs.reserve(blocks.size());
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const json& pair = blocks[i];
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() || !pair[1].is_number_unsigned()) {
      bad(fmt::format("blocks[{}] must be a pair of non-negative integers, got {}", i, json_input::describe(pair)));
    }
    pairs.emplace_back(pair[0].get<std::uint64_t>(), pair[1].get<std::uint64_t>());
  }
  return pairs;
}

std::optional<ConnectorRequest> connector_field(const json& object) {
  const auto it = object.find("connector_req");
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) bad(fmt::format("'connector_req' must be an object or null, got {}", json_input::describe(*it)));
  ConnectorRequest request{string_field(*it, "request_id", "connector_req."), string_field(*it, "uuid", "connector_req."), {}, {}};
  if (const auto type = it->find("request_type"); type != it->end() && !type->is_null()) {
    if (!type->is_string() || (*type != "Scheduled" && *type != "Immediate")) {
      bad(fmt::format("'connector_req.request_type' must be \"Scheduled\" or \"Immediate\", got {}", json_input::describe(*type)));
    }
    request.request_type = type->get<std::string>();
  }
  if (const auto requirement = it->find("requirement"); requirement != it->end()) {
    request.requirement = json_input::dump(*requirement);
  }
  return request;
}

}  // namespace

std::string to_string(BlockTransferPool pool) {
  switch (pool) {
    case BlockTransferPool::Device: return "Device";
    case BlockTransferPool::Host: return "Host";
    case BlockTransferPool::Disk: return "Disk";
  }
  return "Unknown";
}

BlockTransferPool parse_pool(std::string_view text) {
  if (text == "Device") return BlockTransferPool::Device;
  if (text == "Host") return BlockTransferPool::Host;
  if (text == "Disk") return BlockTransferPool::Disk;
  throw make_error(ErrorCode::InvalidArgument, "unknown pool '{}' (expected Device, Host or Disk)", printable(text, 60));
}

std::string encode_request(const BlockTransferRequest& request) {
  // Written directly, in the seed's field order: this is on the leader's path for every request,
  // and a JSON object built key by key costs several times as much. Only the connector's
  // strings need escaping, which the JSON library does.
  std::string out = fmt::format(R"({{"from_pool":"{}","to_pool":"{}","blocks":[)", to_string(request.from_pool),
                                to_string(request.to_pool));
  // Pair by pair through a small buffer: fmt's back-inserter appends a character at a time,
  // which took 500 us for the 4,096 pairs of a 256 MiB leg of 64 KiB blocks.
  out.reserve(out.size() + request.blocks.size() * 16 + 64);
  char pair[2 * std::numeric_limits<std::size_t>::digits10 + 8];
  for (std::size_t i = 0; i < request.blocks.size(); ++i) {
    char* end = pair;
    if (i != 0) *end++ = ',';
    *end++ = '[';
    end = std::to_chars(end, pair + sizeof pair, request.blocks[i].first).ptr;
    *end++ = ',';
    end = std::to_chars(end, pair + sizeof pair, request.blocks[i].second).ptr;
    *end++ = ']';
    out.append(pair, end);
  }
  out += R"(],"connector_req":)";
  if (request.connector_req) {
    // In Dynamo's field order; the requirement is JSON text this process parsed or built.
    const ConnectorRequest& connector = *request.connector_req;
    out += R"({"request_id":)" + json_input::dump(json(connector.request_id)) + R"(,"uuid":)" + json_input::dump(json(connector.uuid));
    if (!connector.requirement.empty()) out += R"(,"requirement":)" + json_input::dump(json::parse(connector.requirement));
    if (!connector.request_type.empty()) out += R"(,"request_type":)" + json_input::dump(json(connector.request_type));
    out += '}';
  } else {
    out += "null";
  }
  out += '}';
  return out;
}

BlockTransferRequest decode_request(std::string_view bytes, std::size_t max_block_pairs) {
  if (auto request = read_canonical_request(bytes, max_block_pairs)) return std::move(*request);
  return read_json_request(bytes, max_block_pairs);
}

BlockTransferRequest read_json_request(std::string_view bytes, std::size_t max_block_pairs) {
  // One array per pair, the blocks array and two objects: more containers than that cannot be
  // a request, and is refused before a document of them is built.
  json parsed;
  try {
    parsed = json_input::parse(bytes, "the request", max_block_pairs + 4);
  } catch (const Error& error) {
    bad(error.message());
  }
  if (!parsed.is_object()) bad(fmt::format("expected a JSON object, got {}", json_input::describe(parsed)));
  BlockTransferRequest request;
  request.from_pool = pool_field(parsed, "from_pool");
  request.to_pool = pool_field(parsed, "to_pool");
  request.blocks = blocks_field(parsed, max_block_pairs);
  request.connector_req = connector_field(parsed);
  return request;
}

}  // namespace kvbm
