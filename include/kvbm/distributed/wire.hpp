#pragma once
// The leader <-> worker wire format (seed 000, field names as Dynamo's serde derives them):
//   {"from_pool":"Host","to_pool":"Device","blocks":[[3,7],[4,8]],"connector_req":null}
// Unknown fields are ignored; missing or mistyped required fields are errors naming the field.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/transfer/block_pair.hpp"

namespace kvbm {

enum class BlockTransferPool { Device, Host, Disk };

[[nodiscard]] std::string to_string(BlockTransferPool pool);
// "Device", "Host" or "Disk"; anything else is an Error naming the text.
[[nodiscard]] BlockTransferPool parse_pool(std::string_view text);

// What a vLLM-style connector attaches so the worker's scheduler can track the operation.
struct ConnectorRequest {
  std::string request_id;  // the inference request this load or save belongs to
  std::string uuid;        // the operation id
  // As Dynamo's connector sends them: "Scheduled" or "Immediate" (empty: not given), and its
  // scheduling requirement as JSON text (empty: not given). Both travel unchanged.
  std::string request_type;
  std::string requirement;
  bool operator==(const ConnectorRequest&) const = default;
};

struct BlockTransferRequest {
  BlockTransferPool from_pool = BlockTransferPool::Host;
  BlockTransferPool to_pool = BlockTransferPool::Device;
  std::vector<BlockPair> blocks;
  std::optional<ConnectorRequest> connector_req;
  bool operator==(const BlockTransferRequest&) const = default;
};

// The most block pairs a request may carry unless a caller says otherwise (KVBM_MAX_BLOCK_PAIRS
// sets a worker's), and the longest connector request id or uuid.
inline constexpr std::size_t kDefaultMaxBlockPairs = 256u << 10;
inline constexpr std::size_t kMaxConnectorIdBytes = 1024;

[[nodiscard]] std::string encode_request(const BlockTransferRequest& request);
// Throws InvalidArgument naming the problem: not JSON, not an object, nested too deep, a
// missing or mistyped field, an unknown pool, a block that is not a pair of non-negative
// integers, more than `max_block_pairs` pairs, a connector id longer than kMaxConnectorIdBytes.
[[nodiscard]] BlockTransferRequest decode_request(std::string_view bytes,
                                                  std::size_t max_block_pairs = kDefaultMaxBlockPairs);

}  // namespace kvbm
