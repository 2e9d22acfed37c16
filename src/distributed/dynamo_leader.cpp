#include "kvbm/distributed/dynamo_leader.hpp"

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "distributed/socket_ends.hpp"
#include "kvbm/distributed/protocol.hpp"

namespace kvbm {

using Clock = std::chrono::steady_clock;

struct DynamoLeader::Impl {
  explicit Impl(DynamoLeaderOptions opts)
      : options(std::move(opts)), publisher(context, zmq::socket_type::pub), puller(context, zmq::socket_type::pull) {
    if (options.world_size <= 0) {
      throw make_error(ErrorCode::InvalidArgument, "Dynamo leader: world size {} must be > 0", options.world_size);
    }
    publisher.set(zmq::sockopt::linger, 0);
    puller.set(zmq::sockopt::linger, 0);
    with_endpoint(options.pub_endpoint, "bind", [&] { publisher.bind(options.pub_endpoint); });
    with_endpoint(options.ack_endpoint, "bind", [&] { puller.bind(options.ack_endpoint); });
  }

  std::uint64_t publish(const std::string& handler, const std::vector<std::string>& frames) {
    const std::uint64_t id = next_id++;
    zmq::multipart_t message;
    message.addstr(protocol::encode_id(id));
    message.addstr(handler);
    for (const std::string& frame : frames) message.addstr(frame);
    message.send(publisher);
    return id;
  }

  // Replies to message `id` until `count` arrived or `deadline` passed; those of other ids
  // (late answers to an earlier round) are dropped.
  std::vector<std::string> collect(std::uint64_t id, std::size_t count, Clock::time_point deadline) {
    std::vector<std::string> payloads;
    while (payloads.size() < count) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      zmq::pollitem_t item{puller.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, left) == 0) break;
      zmq::multipart_t reply(puller);
      if (reply.empty() || reply[0].size() != 8) continue;
      if (protocol::decode_id(reply[0].to_string()) != id) continue;
      payloads.push_back(reply.size() >= 3 ? reply[2].to_string() : std::string());
    }
    return payloads;
  }

  DynamoLeaderOptions options;
  zmq::context_t context{1};
  zmq::socket_t publisher;
  zmq::socket_t puller;
  std::uint64_t next_id = 1;  // Dynamo's ids start at 1
};

DynamoLeader::DynamoLeader(DynamoLeaderOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
DynamoLeader::~DynamoLeader() = default;

std::vector<dynamo::WorkerMetadata> DynamoLeader::handshake(
    const std::function<dynamo::LeaderMetadata(const std::vector<dynamo::WorkerMetadata>&)>& pools,
    std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  const auto deadline = Clock::now() + timeout;
  const auto world = static_cast<std::size_t>(s.options.world_size);
  // 1. Rounds of worker_metadata: a subscriber that joined late missed the earlier ones.
  std::vector<std::string> answers;
  while (answers.size() != world) {
    if (Clock::now() >= deadline) {
      throw make_error(ErrorCode::Timeout, "Dynamo handshake: worker_metadata answered by {} of {} workers in the last round",
                       answers.size(), world);
    }
    const std::uint64_t id = s.publish(dynamo::kWorkerMetadata, {});
    answers = s.collect(id, world + 1, std::min(deadline, Clock::now() + s.options.round));
  }
  std::vector<dynamo::WorkerMetadata> workers;
  for (const std::string& answer : answers) workers.push_back(dynamo::decode_worker_metadata(answer));
  // 2. The pools' sizes.
  const dynamo::LeaderMetadata counts = pools(workers);
  const std::uint64_t id = s.publish(dynamo::kLeaderMetadata, {dynamo::encode(counts)});
  const std::size_t acked = s.collect(id, world, deadline).size();
  if (acked < world) {
    throw make_error(ErrorCode::Timeout, "Dynamo handshake: leader_metadata acked by {} of {} workers", acked, world);
  }
  // 3. Pings until every worker says its pools are ready.
  for (;;) {
    if (Clock::now() >= deadline) {
      throw make_error(ErrorCode::Timeout, "Dynamo handshake: not every worker's pools were ready in time");
    }
    const std::uint64_t ping = s.publish(dynamo::kPing, {});
    if (s.collect(ping, world, std::min(deadline, Clock::now() + s.options.round)).size() == world) break;
  }
  log().info("Dynamo handshake done: {} workers, {} host and {} disk blocks each", world, counts.num_host_blocks,
             counts.num_disk_blocks);
  return workers;
}

std::vector<std::string> DynamoLeader::send(const std::string& handler, const std::vector<std::string>& frames,
                                            std::chrono::milliseconds timeout) {
  const auto world = static_cast<std::size_t>(impl_->options.world_size);
  const std::uint64_t id = impl_->publish(handler, frames);
  auto replies = impl_->collect(id, world, Clock::now() + timeout);
  if (replies.size() < world) {
    throw make_error(ErrorCode::Timeout, "{} message {}: {} of {} workers answered within {} ms", printable(handler), id,
                     replies.size(), world, timeout.count());
  }
  return replies;
}

void DynamoLeader::transfer(const BlockTransferRequest& request, std::chrono::milliseconds timeout) {
  (void)send(protocol::kTransferHandler, {encode_request(request)}, timeout);
}

}  // namespace kvbm
