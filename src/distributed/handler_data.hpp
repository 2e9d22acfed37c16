#pragma once
// The data frames of the worker's handlers other than transfer_blocks (see
// kvbm/distributed/protocol.hpp), read from untrusted bytes. Each reader throws InvalidArgument
// naming the field and its value, and nothing else; the fuzzer drives them directly.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/distributed/wire.hpp"

namespace kvbm::handler_data {

// kvbm.hash {"pool","blocks"} and kvbm.fill {"pool","blocks","seed"} (seed: 0 when absent).
struct BlockList {
  BlockTransferPool pool = BlockTransferPool::Host;
  std::vector<std::size_t> blocks;
  std::uint64_t seed = 0;
};
[[nodiscard]] BlockList read_block_list(std::string_view data, std::string_view handler, std::size_t max_blocks);

// kvbm.cancel {"uuid"}.
[[nodiscard]] std::string read_cancel(std::string_view data);

// kvbm.reject {"nonce","reason"}: a rejection names the worker it is meant for by nonce.
struct Rejection {
  std::uint64_t nonce = 0;
  std::string reason;
};
[[nodiscard]] Rejection read_reject(std::string_view data);
[[nodiscard]] std::string encode_reject(const Rejection& rejection);

}  // namespace kvbm::handler_data
