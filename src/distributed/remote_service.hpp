#pragma once
// A worker's remote agent and the messages that drive it:
//   kvbm.remote_metadata  -> {"metadata": hex, "layouts": {"host": id, "device": id}}
//   kvbm.remote_import    {"metadata": hex} -> {"peer": name}
//   kvbm.remote_transfer  {"direction": "write"|"read", "pool", "blocks", "peer", "layout",
//                          "remote_blocks", "notification"?}: moves blocks[i] <-> remote_blocks[i]
// The agent exports the worker's host pool (and its device pool with GPU RDMA); metadata travels
// as hex so that it fits the JSON replies.
#include <memory>
#include <string>
#include <string_view>

#include "kvbm/distributed/block_transfer_handler.hpp"
#include "kvbm/remote/remote_agent.hpp"

namespace kvbm {

class RemoteService {
 public:
  RemoteService(RemoteAgentOptions options, const BlockTransferHandler& pools, std::size_t max_block_pairs);

  [[nodiscard]] static bool handles(std::string_view message_name);
  // Answers a synchronous message with its reply data (throws what is wrong with it).
  [[nodiscard]] std::string answer(std::string_view message_name, std::string_view data);
  // Starts the transfer kvbm.remote_transfer asks for.
  [[nodiscard]] TransferHandle start_transfer(std::string_view data);

 private:
  [[nodiscard]] const LayoutPtr& pool(BlockTransferPool which) const;

  RemoteAgent agent_;
  LayoutPtr host_;
  LayoutPtr device_;
  std::optional<std::uint32_t> host_id_;
  std::optional<std::uint32_t> device_id_;
  std::size_t max_block_pairs_;
};

[[nodiscard]] std::string to_hex(std::string_view bytes);
// Throws InvalidArgument naming the first character that is not a hex digit, or an odd length.
[[nodiscard]] std::string from_hex(std::string_view hex, std::string_view what);

}  // namespace kvbm
