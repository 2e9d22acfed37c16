#include "kvbm/distributed/worker.hpp"

#include <xxhash.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/cpu_affinity.hpp"
#include "common/thread_pool.hpp"
#include "distributed/message_receiver.hpp"
#include "kvbm/common/settings.hpp"
#include "kvbm/common/log.hpp"
#include "kvbm/distributed/protocol.hpp"
#include "kvbm/memory/region.hpp"
#include "layout/chunk_io.hpp"
#include "distributed/socket_ends.hpp"

namespace kvbm {

struct Worker::Impl {
  Impl(WorkerOptions opts, std::shared_ptr<BlockTransferHandler> h)
      : options(std::move(opts)), handler(std::move(h)), nonce(std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32)),
        context(make_message_context(options.message_cpu)), subscriber(context, zmq::socket_type::sub),
        pusher(context, zmq::socket_type::push),
        pool(std::max<std::size_t>(1, options.concurrent_transfers)) {
    if (options.world_size <= 0 || options.rank < 0 || options.rank >= options.world_size) {
      throw make_error(ErrorCode::InvalidArgument, "worker rank {} is outside [0, world_size={})", options.rank,
                       options.world_size);
    }
    connect_worker_end(subscriber, pusher, options.leader_endpoint);
  }

  void reply(std::uint64_t id, const std::string& handler_name, const Status& status, nlohmann::json data = nullptr) {
    if (!status.ok()) log().warn("rank {}: {} message {} failed: {}", options.rank, handler_name, id, status.to_string());
    // Most replies are a plain success: that payload is encoded once.
    const bool plain_ok = status.ok() && data.is_null();
    const std::string encoded = plain_ok ? std::string() : protocol::encode_outcome({options.rank, status, std::move(data)});
    const std::string& payload = plain_ok ? ok_payload : encoded;
    std::lock_guard lock(push_mutex);
    zmq::multipart_t reply;
    reply.addstr(protocol::encode_id(id));
    reply.addstr(handler_name);
    reply.addstr(payload);
    reply.send(pusher);
  }

  // The one data frame a handler needs, as JSON; errors name the frame count.
  static nlohmann::json single_json_frame(const zmq::multipart_t& message, const std::string& name) {
    if (message.size() != 3) {
      throw make_error(ErrorCode::InvalidArgument, "{} message must carry exactly one data frame, got {}", name,
                       message.size() - 2);
    }
    auto json = nlohmann::json::parse(message[2].to_string(), nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
      throw make_error(ErrorCode::InvalidArgument, "{} data frame is not a JSON object", name);
    }
    return json;
  }

  std::vector<std::size_t> blocks_of(const nlohmann::json& json, const Layout& layout) {
    std::vector<std::size_t> blocks;
    if (!json.contains("blocks") || !json["blocks"].is_array()) {
      throw make_error(ErrorCode::InvalidArgument, "'blocks' must be an array of block indices");
    }
    for (const auto& block : json["blocks"]) {
      if (!block.is_number_unsigned() || block.get<std::size_t>() >= layout.config().num_blocks) {
        throw make_error(ErrorCode::OutOfRange, "block {} is not an index below {}", block.dump(),
                         layout.config().num_blocks);
      }
      blocks.push_back(block.get<std::size_t>());
    }
    return blocks;
  }

  const LayoutPtr& pool_of(const nlohmann::json& json) {
    if (!json.contains("pool") || !json["pool"].is_string()) throw make_error(ErrorCode::InvalidArgument, "'pool' must be a string");
    return handler->pool(parse_pool(json["pool"].get<std::string>()));
  }

  // kvbm.fill: deterministic random bytes per (seed, rank, block), so a test can check them.
  nlohmann::json fill(const nlohmann::json& json) {
    const LayoutPtr& layout = pool_of(json);
    const std::uint64_t seed = json.value("seed", std::uint64_t{0});
    for (std::size_t block : blocks_of(json, *layout)) {
      std::mt19937_64 rng(seed ^ (std::uint64_t(options.rank) << 48) ^ (block * 0x9e3779b97f4a7c15ULL));
      std::vector<std::byte> bytes(block_bytes(*layout));
      for (auto& b : bytes) b = static_cast<std::byte>(rng());
      write_block(*layout, block, bytes);
    }
    return nullptr;
  }

  nlohmann::json hash(const nlohmann::json& json) {
    const LayoutPtr& layout = pool_of(json);
    nlohmann::json hashes = nlohmann::json::array();
    for (std::size_t block : blocks_of(json, *layout)) {
      const auto bytes = read_block(*layout, block);
      hashes.push_back(XXH3_64bits(bytes.data(), bytes.size()));
    }
    return {{"hashes", hashes}};
  }

  void handle_transfer(std::uint64_t id, const zmq::multipart_t& message) {
    std::optional<BlockTransferRequest> request;
    try {
      if (message.size() != 3) {
        throw make_error(ErrorCode::InvalidArgument,
                         "block transfer request must carry exactly one data frame, got {}", message.size() - 2);
      }
      request = decode_request(std::string_view(message[2].data<char>(), message[2].size()));
    } catch (const Error& error) {
      // The seed returns without acknowledging here, leaving the leader to time out: kvbm acks.
      reply(id, protocol::kTransferHandler, error);
      return;
    }
    if (request->connector_req && handler->scheduler()) handler->scheduler()->enqueue(*request->connector_req);
    admit(id, std::move(*request));
  }

  // Transfers start on the receiving thread and are acknowledged from the thread that finishes
  // them: no hand-off to a worker thread on the way in or out (each costs tens of microseconds
  // of wake-up). At most options.concurrent_transfers run at once; the rest wait their turn.
  void admit(std::uint64_t id, BlockTransferRequest request) {
    {
      std::lock_guard lock(admission_mutex);
      if (in_flight >= std::max<std::size_t>(1, options.concurrent_transfers)) {
        waiting.emplace_back(id, std::move(request));
        return;
      }
      ++in_flight;
    }
    launch(id, request);
  }

  void launch(std::uint64_t id, const BlockTransferRequest& request) {
    handler->start(request, [this, id](const Status& status) {
      reply(id, protocol::kTransferHandler, status);
      finished();
    });
  }

  void finished() {
    std::optional<std::pair<std::uint64_t, BlockTransferRequest>> next;
    {
      std::lock_guard lock(admission_mutex);
      if (waiting.empty()) {
        if (--in_flight == 0) drained.notify_all();
        return;
      }
      next = std::move(waiting.front());
      waiting.pop_front();
    }
    launch(next->first, next->second);
  }

  ~Impl() {
    // Completions reply through the sockets: let every admitted transfer finish first.
    std::unique_lock lock(admission_mutex);
    drained.wait(lock, [&] { return in_flight == 0; });
  }

  // Returns false when the worker should stop.
  bool dispatch(zmq::multipart_t& message) {
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
    if (name == protocol::kTransferHandler) {
      handle_transfer(id, message);
      return true;
    }
    if (name == protocol::kHello) {
      reply(id, name, {}, {{"nonce", nonce}, {"world_size", options.world_size}});
      return true;
    }
    if (name == protocol::kReject) {
      const auto json = nlohmann::json::parse(message.size() == 3 ? message[2].to_string() : "{}", nullptr, false);
      if (json.is_object() && json.value("nonce", std::uint64_t{0}) == nonce) {
        rejection = make_error(ErrorCode::InvalidArgument, "the leader rejected rank {}: {}", options.rank,
                               json.value("reason", std::string("no reason given")));
        return false;
      }
      return true;
    }
    if (name == protocol::kPing) {
      reply(id, name, {});
      return true;
    }
    if (name == protocol::kShutdown) {
      reply(id, name, {});
      return false;
    }
    try {
      const nlohmann::json json = single_json_frame(message, name);
      if (name == protocol::kCancel) {
        if (!handler->scheduler()) throw make_error(ErrorCode::InvalidArgument, "this worker has no connector scheduler");
        if (!json.contains("uuid") || !json["uuid"].is_string()) throw make_error(ErrorCode::InvalidArgument, "'uuid' must be a string");
        reply(id, name, handler->scheduler()->cancel(json["uuid"].get<std::string>()));
      } else if (name == protocol::kFill || name == protocol::kHash) {
        pool.post([this, id, name, json] {
          try {
            reply(id, name, {}, name == protocol::kFill ? fill(json) : hash(json));
          } catch (const Error& error) {
            reply(id, name, error);
          }
        });
      } else {
        throw make_error(ErrorCode::InvalidArgument, "no handler named '{}'", name);
      }
    } catch (const Error& error) {
      reply(id, name, error);
    }
    return true;
  }

  Status run() {
    log().info("rank {}/{} serving {}", options.rank, options.world_size, options.leader_endpoint);
    std::optional<ScopedThreadCpu> on_message_cpu;
    try {
      on_message_cpu.emplace(options.message_cpu);
    } catch (const Error& error) {  // checked when the context was made: the CPU went away since
      return error;
    }
    MessageReceiver receiver(subscriber, message_spin);
    while (!stopping.load()) {
      auto message = receiver.next(std::chrono::milliseconds(100));
      if (message && !dispatch(*message)) break;
    }
    return rejection;
  }

  WorkerOptions options;
  std::shared_ptr<BlockTransferHandler> handler;
  std::uint64_t nonce;
  zmq::context_t context;
  zmq::socket_t subscriber;
  zmq::socket_t pusher;
  std::mutex push_mutex;
  std::mutex admission_mutex;
  std::condition_variable drained;
  std::size_t in_flight = 0;
  std::deque<std::pair<std::uint64_t, BlockTransferRequest>> waiting;
  std::atomic<bool> stopping{false};
  std::chrono::microseconds message_spin{settings::message_spin_us()};  // read here: a bad value throws to the caller
  const std::string ok_payload = protocol::encode_outcome({options.rank, Status{}, nullptr});
  Status rejection;
  ThreadPool pool;  // declared last: destroyed first, so queued work finishes while sockets live
};

Worker::Worker(WorkerOptions options, std::shared_ptr<BlockTransferHandler> handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

Worker::~Worker() = default;

Status Worker::run() { return impl_->run(); }

void Worker::stop() { impl_->stopping = true; }

}  // namespace kvbm
