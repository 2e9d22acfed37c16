#include "distributed/handler_data.hpp"

#include "common/json_input.hpp"
#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm::handler_data {

BlockList read_block_list(std::string_view data, std::string_view handler, std::size_t max_blocks) {
  const std::string what = fmt::format("{} data", handler);
  const auto json = json_input::parse_object(data, what);
  BlockList list;
  const std::string pool = json_input::required_string(json, "pool", what, 64);
  try {
    list.pool = parse_pool(pool);
  } catch (const Error& error) {
    throw make_error(ErrorCode::InvalidArgument, "{}: {}", what, error.message());
  }
  const auto* blocks = json_input::find(json, "blocks");
  if (blocks == nullptr || !blocks->is_array()) {
    throw make_error(ErrorCode::InvalidArgument, "{}: 'blocks' must be an array of block indices, got {}", what,
                     blocks ? json_input::describe(*blocks) : "nothing");
  }
  if (blocks->size() > max_blocks) {
    throw make_error(ErrorCode::InvalidArgument, "{}: {} blocks, more than the {} allowed", what, blocks->size(),
                     max_blocks);
  }
  for (std::size_t i = 0; i < blocks->size(); ++i) {
    const auto& block = (*blocks)[i];
    if (!block.is_number_unsigned()) {
      throw make_error(ErrorCode::InvalidArgument, "{}: blocks[{}] must be a block index, got {}", what, i,
                       json_input::describe(block));
    }
    list.blocks.push_back(block.get<std::size_t>());
  }
  list.seed = json_input::optional_u64(json, "seed", what).value_or(0);
  return list;
}

std::string read_cancel(std::string_view data) {
  const auto json = json_input::parse_object(data, "kvbm.cancel data");
  return json_input::required_string(json, "uuid", "kvbm.cancel data", kMaxConnectorIdBytes);
}

Rejection read_reject(std::string_view data) {
  const auto json = json_input::parse_object(data, "kvbm.reject data");
  Rejection rejection;
  rejection.nonce = json_input::required_u64(json, "nonce", "kvbm.reject data");
  // The reason is only for the message: one that is not a string does not void the rejection.
  const nlohmann::json* reason = json_input::find(json, "reason");
  rejection.reason = reason == nullptr ? "no reason given"
                     : reason->is_string() ? printable(reason->get_ref<const std::string&>(), 300)
                                           : "(reason not a string: " + json_input::describe(*reason) + ")";
  return rejection;
}

std::string encode_reject(const Rejection& rejection) {
  return json_input::dump({{"nonce", rejection.nonce}, {"reason", rejection.reason}});
}

}  // namespace kvbm::handler_data
