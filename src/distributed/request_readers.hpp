#pragma once
// The two readers behind decode_request (kvbm/distributed/wire.hpp), declared apart so that the
// tests and the fuzzer can check that they agree.
#include <optional>
#include <string_view>

#include "kvbm/distributed/wire.hpp"

namespace kvbm {

// Exactly the text encode_request writes for a request without connector_req, read without the
// JSON library: on a worker's critical path, parsing a one-block request into a JSON document
// costs 1.6-2.5 us. nullopt for any other text (spacing, field order, a connector, a number
// JSON would refuse or that would not fit), which read_json_request then reads or rejects.
// More than `max_block_pairs` pairs is an InvalidArgument naming the count.
[[nodiscard]] std::optional<BlockTransferRequest> read_canonical_request(std::string_view text,
                                                                         std::size_t max_block_pairs);

// Any JSON form; throws InvalidArgument naming the problem (see decode_request).
[[nodiscard]] BlockTransferRequest read_json_request(std::string_view bytes, std::size_t max_block_pairs);

// Throws the InvalidArgument for a request of `pairs` block pairs.
[[noreturn]] void too_many_pairs(std::size_t pairs, std::size_t max_block_pairs);

}  // namespace kvbm
