// libFuzzer target: every decoder of bytes that come from another process, fed the same input.
// - a BlockTransferRequest (both readers, which must agree), then validated against a worker's
//   pools the way the handler does, and encoded and decoded again to the same request;
// - a worker's reply payload as the leader reads it, and the handshake data inside it;
// - the data frames of kvbm.fill / kvbm.hash, kvbm.cancel and kvbm.reject;
// - a remote agent's metadata (what import_peer checks before UCX sees any of it), and the
//   block pairs of a remote transfer checked and expanded against the layout it declares; the
//   same bytes as signed metadata, whose check comes first;
// - Dynamo's bincode handshake frames (worker_metadata, leader_metadata);
// - any text quoted in an error message.
// Any crash, hang, sanitizer report or exception other than kvbm::Error is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/json_input.hpp"
#include "distributed/handler_data.hpp"
#include "distributed/request_readers.hpp"
#include "kvbm/common/error.hpp"
#include "kvbm/distributed/block_transfer_handler.hpp"
#include "kvbm/distributed/protocol.hpp"
#include "kvbm/distributed/wire.hpp"
#include "kvbm/layout/layout.hpp"
#include "kvbm/distributed/dynamo_protocol.hpp"
#include "remote/agent_metadata.hpp"
#include "remote/metadata_mac.hpp"
#include "remote/remote_ops.hpp"
#include "transfer/engine/request_validator.hpp"

namespace {

const kvbm::LayoutPtr& pool() {
  static const kvbm::LayoutPtr layout = kvbm::Layout::allocate(
      {.num_blocks = 32, .num_layers = 2, .outer_dim = 2, .page_size = 1, .inner_dim = 16, .dtype_bytes = 1},
      kvbm::StorageKind::system(), kvbm::LayoutForm::FullyContiguous);
  return layout;
}

constexpr std::size_t kMaxPairs = 64;  // small, so that the limit itself is reached

void request(std::string_view bytes) {
  if (const auto fast = kvbm::read_canonical_request(bytes, kMaxPairs)) {
    if (!(kvbm::read_json_request(bytes, kMaxPairs) == *fast)) __builtin_trap();  // throws too, when JSON refuses it
  }
  try {
    const kvbm::BlockTransferRequest request = kvbm::decode_request(bytes, kMaxPairs);
    if (request.blocks.size() > kMaxPairs) __builtin_trap();
    // What decodes must encode and decode to the same request.
    if (!(kvbm::decode_request(kvbm::encode_request(request), kMaxPairs) == request)) __builtin_trap();
    if (!kvbm::is_accepted_pair(request.from_pool, request.to_pool)) return;
    kvbm::validate_request(*pool(), *pool(), request.blocks);
  } catch (const kvbm::Error&) {
    // Expected for bad input: a clear error, nothing else.
  }
}

void reply(std::string_view bytes) {
  try {
    const kvbm::protocol::Outcome outcome = kvbm::protocol::decode_outcome(bytes);
    (void)kvbm::protocol::encode_outcome(outcome);  // what was read can be written back
    (void)kvbm::protocol::decode_hello(outcome.data);
  } catch (const kvbm::Error&) {
  }
}

template <typename Read>
void handler_data(Read&& read) {
  try {
    read();
  } catch (const kvbm::Error&) {
  }
}

// Metadata that decodes describes layouts whose every chunk, for any pair the checks let
// through, lies inside the regions it declares; and it encodes back to the same bytes.
void agent_metadata(std::string_view bytes) {
  try {
    const kvbm::remote::AgentMetadata metadata = kvbm::remote::decode(bytes);
    if (kvbm::remote::encode(metadata) != bytes) __builtin_trap();
    for (const auto& layout : metadata.layouts) {
      const kvbm::LayoutConfig& shape = layout.info.config;
      if (shape.num_layers != pool()->config().num_layers || shape.outer_dim != pool()->config().outer_dim ||
          shape.chunk_bytes() != pool()->config().chunk_bytes()) {
        continue;
      }
      const std::vector<kvbm::BlockPair> pairs{{0, 0}, {1, shape.num_blocks - 1}};
      for (const auto& op : kvbm::remote::expand_remote(*pool(), layout, pairs, true)) {
        const auto& region = layout.regions.at(op.region);
        if (op.remote < region.address || op.remote + op.bytes > region.address + region.bytes) __builtin_trap();
      }
      const std::vector<kvbm::BlockPair> past_end{{0, shape.num_blocks}};
      try {
        (void)kvbm::remote::expand_remote(*pool(), layout, past_end, true);
        __builtin_trap();
      } catch (const kvbm::Error&) {
      }
    }
  } catch (const kvbm::Error&) {
  }
}

// Signed metadata: the tag is checked before anything decodes it; forged input never passes.
void signed_metadata(std::string_view bytes) {
  static const std::string key(kvbm::remote::kMacKeyBytes, 'k');
  try {
    agent_metadata(kvbm::remote::verify_metadata(key, bytes));
    __builtin_trap();  // a fuzzer that forged an HMAC-SHA-256 tag: hardly, but say so
  } catch (const kvbm::Error&) {
  }
  const std::string signed_bytes = kvbm::remote::sign_metadata(key, bytes);
  if (kvbm::remote::verify_metadata(key, signed_bytes) != bytes) __builtin_trap();
}

// Dynamo's frames: what decodes (canonical varints, no bytes left over) encodes to the same bytes.
template <typename Decode>
void dynamo_frame(std::string_view bytes, Decode&& decode) {
  try {
    if (kvbm::dynamo::encode(decode(bytes)) != bytes) __builtin_trap();
  } catch (const kvbm::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  request(bytes);
  reply(bytes);
  handler_data([&] {
    const auto list = kvbm::handler_data::read_block_list(bytes, "kvbm.hash", kMaxPairs);
    if (list.blocks.size() > kMaxPairs) __builtin_trap();
  });
  handler_data([&] { (void)kvbm::handler_data::read_cancel(bytes); });
  agent_metadata(bytes);
  signed_metadata(bytes);
  dynamo_frame(bytes, [](std::string_view b) { return kvbm::dynamo::decode_worker_metadata(b); });
  dynamo_frame(bytes, [](std::string_view b) { return kvbm::dynamo::decode_leader_metadata(b); });
  handler_data([&] { (void)kvbm::handler_data::encode_reject(kvbm::handler_data::read_reject(bytes)); });
  // Error text from outside input is valid UTF-8 and bounded, whatever the input.
  const std::string text = kvbm::printable(bytes, 100);
  if (text.size() > 100 + 4 * 1 + 32) __builtin_trap();
  (void)kvbm::json_input::dump(nlohmann::json(text));  // throws if the text is not valid UTF-8
  return 0;
}
