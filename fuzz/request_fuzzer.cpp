// libFuzzer target: decoding a BlockTransferRequest from untrusted bytes, then validating it
// against a worker's pools the way the handler does (accepted pair, indices, duplicates). Any
// crash, hang, sanitizer report or exception other than kvbm::Error is a bug, and so is a text
// that the canonical reader takes but the JSON reader reads otherwise.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "distributed/request_readers.hpp"
#include "kvbm/common/error.hpp"
#include "kvbm/distributed/block_transfer_handler.hpp"
#include "kvbm/distributed/wire.hpp"
#include "kvbm/layout/layout.hpp"
#include "transfer/expand.hpp"

namespace {

const kvbm::LayoutPtr& pool() {
  static const kvbm::LayoutPtr layout = kvbm::Layout::allocate(
      {.num_blocks = 32, .num_layers = 2, .outer_dim = 2, .page_size = 1, .inner_dim = 16, .dtype_bytes = 1},
      kvbm::StorageKind::system(), kvbm::LayoutForm::FullyContiguous);
  return layout;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (const auto fast = kvbm::read_canonical_request(bytes)) {
    if (!(kvbm::read_json_request(bytes) == *fast)) __builtin_trap();  // throws too, when JSON refuses it
  }
  try {
    const kvbm::BlockTransferRequest request = kvbm::decode_request(bytes);
    if (!kvbm::is_accepted_pair(request.from_pool, request.to_pool)) return 0;
    kvbm::validate_request(*pool(), *pool(), request.blocks);
    // What decodes must encode and decode to the same request.
    if (!(kvbm::decode_request(kvbm::encode_request(request)) == request)) __builtin_trap();
  } catch (const kvbm::Error&) {
    // Expected for bad input: a clear error, nothing else.
  }
  return 0;
}
