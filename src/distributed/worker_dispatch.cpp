// What each leader message asks of a worker: kvbm's own handlers (transfers go on to
// worker_transfers.cpp), Dynamo's handshake, NCCL set-up, diagnostics, the remote agent; and
// the replies, which never throw.
#include "distributed/worker_impl.hpp"

#include <random>

namespace kvbm {
namespace {

void check_block_indices(const std::vector<std::size_t>& blocks, const Layout& layout) {
  for (std::size_t block : blocks) {
    if (block >= layout.config().num_blocks) {
      throw make_error(ErrorCode::OutOfRange, "block {} is not an index below {}", block, layout.config().num_blocks);
    }
  }
}

}  // namespace

void Worker::Impl::reply(std::uint64_t id, const std::string& handler_name, const Status& status,
           std::string data) noexcept {
  try {
    if (!status.ok()) {
      log().warn("rank {}: {} message {} failed: {}", options.rank, printable(handler_name), id, status.to_string());
    }
    if (options.dynamo && !handler_name.starts_with("kvbm.")) {
      send_reply(id, {});
      return;
    }
    // Most replies are a plain success: that payload is encoded once.
    const bool plain_ok = status.ok() && data.empty();
    const std::string encoded =
        plain_ok ? std::string() : protocol::encode_outcome({options.rank, nonce, status, std::move(data)});
    const std::string& payload = plain_ok ? ok_payload : encoded;
    send_reply(id, handler_name, payload);
  } catch (...) {
    log().error("rank {}: replying to message {}: {}", options.rank, id,
                current_exception_as_error("reply").message());
  }
}

void Worker::Impl::send_reply(std::uint64_t id, std::string_view handler_name, std::string_view payload) {
  std::lock_guard lock(push_mutex);
  zmq::multipart_t reply;
  reply.addstr(protocol::encode_id(id));
  if (!handler_name.empty()) {
    reply.addstr(std::string(handler_name));
    reply.addstr(std::string(payload));
  }
  if (!reply.send(pusher)) {
    log().error("rank {}: the reply to message {} could not be queued (no leader reading)", options.rank, id);
  }
}

bool Worker::Impl::dispatch(const zmq::multipart_t& message) {
  if (message.size() < 2) {
    log().warn("rank {}: dropped a message of {} frames (need id and handler)", options.rank, message.size());
    return true;
  }
  std::uint64_t id = 0;
  try {
    id = protocol::decode_id(message[0].to_string());
  } catch (const Error& error) {
    log().warn("rank {}: dropped a message: {}", options.rank, error.message());
    return true;
  }
  const std::string name = message[1].to_string();
  try {
    std::size_t bytes = 0;
    for (const auto& frame : message) bytes += frame.size();
    if (bytes > options.max_message_bytes) {
      throw make_error(ErrorCode::InvalidArgument,
                       "{} message of {} bytes is larger than the {} allowed (KVBM_MAX_MESSAGE_BYTES)", printable(name),
                       bytes, options.max_message_bytes);
    }
    bool keep_serving = true;
    if (options.dynamo && handle_dynamo(id, name, message, keep_serving)) return keep_serving;
    if (name == protocol::kTransferHandler) {
      handle_transfer(id, message);
    } else if (name == protocol::kHello) {
      reply(id, name, {}, protocol::encode_hello({nonce, options.world_size, options.replicated}));
    } else if (name == protocol::kReject) {
      handle_reject(message);
      return rejection_status.ok();
    } else if (name == protocol::kPing) {
      reply(id, name, {});
    } else if (name == protocol::kShutdown) {
      reply(id, name, {});
      return false;
    } else if (name == protocol::kNcclId || name == protocol::kNcclInit) {
      handle_nccl(id, name, message);
    } else if (name == protocol::kCancel || name == protocol::kFill || name == protocol::kHash) {
      handle_diagnostic(id, name, message);
    } else if (RemoteService::handles(name)) {
      handle_remote(id, name, message);
    } else {
      throw make_error(ErrorCode::InvalidArgument, "no handler named '{}'", printable(name));
    }
  } catch (...) {
    reply(id, name, current_exception_as_error(fmt::format("rank {}: {} message", options.rank, printable(name))));
  }
  return true;
}

bool Worker::Impl::handle_dynamo(std::uint64_t id, const std::string& name, const zmq::multipart_t& message, bool& keep_serving) {
  if (name == dynamo::kWorkerMetadata) {
    send_reply(id, name, dynamo::encode(dynamo::WorkerMetadata{options.dynamo->device_blocks, options.dynamo->bytes_per_block}));
  } else if (name == dynamo::kLeaderMetadata) {
    send_reply(id, {});  // at once, as Dynamo's worker does; the pools follow
    dynamo::LeaderMetadata counts;
    try {
      counts = dynamo::decode_leader_metadata(single_frame(message, name));
    } catch (const Error& error) {
      log().error("rank {}: leader_metadata message {} ignored: {}", options.rank, id, error.message());
      return true;
    }
    log().info("rank {}: the leader asks for {} host and {} disk blocks", options.rank, counts.num_host_blocks,
               counts.num_disk_blocks);
    try {
      auto fresh = options.dynamo->make_handler(counts.num_host_blocks, counts.num_disk_blocks);
      std::lock_guard lock(handler_mutex);
      retired_handlers.push_back(std::move(handler));  // transfers it started may still run
      handler = std::move(fresh);
      pools_ready = true;
    } catch (...) {
      fatal_status = current_exception_as_error(fmt::format("rank {}: making the pools the leader asked for", options.rank));
      keep_serving = false;
    }
  } else if (name == dynamo::kPing) {
    // Acked only once the pools are ready: Dynamo's leader pings until every worker is.
    if (pools_ready) send_reply(id, {});
  } else {
    return false;
  }
  return true;
}

std::string_view Worker::Impl::single_frame(const zmq::multipart_t& message, const std::string& name) {
  if (message.size() != 3) {
    throw make_error(ErrorCode::InvalidArgument, "{} message must carry exactly one data frame, got {}",
                     printable(name), message.size() - 2);
  }
  return {message[2].data<char>(), message[2].size()};
}

void Worker::Impl::fill(const handler_data::BlockList& request) {
  const Layout& layout = *current_handler()->pool(request.pool);
  check_block_indices(request.blocks, layout);
  for (std::size_t block : request.blocks) {
    std::mt19937_64 rng(request.seed ^ (std::uint64_t(options.rank) << 48) ^ (block * 0x9e3779b97f4a7c15ULL));
    std::vector<std::byte> bytes(block_bytes(layout));
    for (auto& b : bytes) b = static_cast<std::byte>(rng());
    write_block(layout, block, bytes);
  }
}

std::string Worker::Impl::hash(const handler_data::BlockList& request) {
  const Layout& layout = *current_handler()->pool(request.pool);
  check_block_indices(request.blocks, layout);
  nlohmann::json hashes = nlohmann::json::array();
  for (std::size_t block : request.blocks) {
    const auto bytes = read_block(layout, block);
    hashes.push_back(XXH3_64bits(bytes.data(), bytes.size()));
  }
  return json_input::dump({{"hashes", hashes}});
}

void Worker::Impl::handle_reject(const zmq::multipart_t& message) {
  try {
    const auto rejection = handler_data::read_reject(single_frame(message, protocol::kReject));
    if (rejection.nonce != nonce) return;  // meant for another worker
    rejection_status = make_error(ErrorCode::InvalidArgument, "the leader rejected rank {}: {}", options.rank,
                                  printable(rejection.reason, 300));
  } catch (const Error& error) {
    log().warn("rank {}: ignored a malformed rejection: {}", options.rank, error.message());
  }
}

void Worker::Impl::handle_nccl(std::uint64_t id, const std::string& name, const zmq::multipart_t& message) {
  if (!options.replicated) throw make_error(ErrorCode::InvalidArgument, "rank {} is not in replicated mode", options.rank);
  if (name == protocol::kNcclId) {
    reply(id, name, {}, options.rank == 0 ? json_input::dump({{"nccl_id", NcclCommunicator::new_unique_id()}}) : "");
    return;
  }
  const auto data = json_input::parse_object(single_frame(message, name), "kvbm.nccl_init data");
  const std::string nccl_id = json_input::required_string(data, "nccl_id", "kvbm.nccl_init data", 1024);
  const auto serving = current_handler();
  const int device = static_cast<int>(serving->pool(BlockTransferPool::Device)->kind().index());
  serving->set_communicator(
      std::make_shared<NcclCommunicator>(nccl_id, options.rank, options.world_size, device, options.nccl_timeout));
  reply(id, name, {});
}

void Worker::Impl::handle_diagnostic(std::uint64_t id, const std::string& name, const zmq::multipart_t& message) {
  if (name == protocol::kCancel) {
    const std::string uuid = handler_data::read_cancel(single_frame(message, name));
    const auto serving = current_handler();
    if (!serving->scheduler()) throw make_error(ErrorCode::InvalidArgument, "this worker has no connector scheduler");
    serving->scheduler()->cancel(uuid);
    reply(id, name, {});
    return;
  }
  auto request = handler_data::read_block_list(single_frame(message, name), name, options.max_block_pairs);
  pool.post([this, id, name, request = std::move(request)] {
    try {
      if (name == protocol::kFill) {
        fill(request);
        reply(id, name, {});
      } else {
        reply(id, name, {}, hash(request));
      }
    } catch (...) {
      reply(id, name, current_exception_as_error(name));
    }
  });
}

void Worker::Impl::handle_remote(std::uint64_t id, const std::string& name, const zmq::multipart_t& message) {
  if (!remote) throw make_error(ErrorCode::InvalidArgument, "rank {} has no remote agent (kvbm worker --remote)", options.rank);
  const std::string_view data = message.size() > 2 ? single_frame(message, name) : std::string_view{};
  if (name != protocol::kRemoteTransfer) {
    reply(id, name, {}, remote->answer(name, data));
    return;
  }
  remote->start_transfer(data).detach([this, id, name](const Status& status) { reply(id, name, status); });
}

}  // namespace kvbm
