#pragma once
// A leader that speaks Dynamo 1.6's protocol (dynamo_protocol.hpp), for driving Dynamo's own
// KVBM workers (or kvbm workers in Dynamo mode): PUB for messages, PULL for acks, the
// three-step handshake, transfer_blocks counted by plain acks. Acks carry no outcome, so a
// transfer's success cannot be known here: the workers log their errors.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvbm/distributed/dynamo_protocol.hpp"
#include "kvbm/distributed/wire.hpp"

namespace kvbm {

struct DynamoLeaderOptions {
  std::string pub_endpoint = "tcp://127.0.0.1:56001";  // bound; messages
  std::string ack_endpoint = "tcp://127.0.0.1:56002";  // bound; replies
  int world_size = 1;
  std::chrono::milliseconds round{500};  // how long a handshake round waits; the ping interval
};

class DynamoLeader {
 public:
  // Binds both endpoints. Throws InvalidArgument for a world size <= 0 or a malformed
  // endpoint, Io when one cannot be bound.
  explicit DynamoLeader(DynamoLeaderOptions options);
  ~DynamoLeader();
  DynamoLeader(const DynamoLeader&) = delete;
  DynamoLeader& operator=(const DynamoLeader&) = delete;

  // worker_metadata until one round is answered by exactly world_size workers, then
  // leader_metadata with what `pools` makes of their answers, then ping until all are ready.
  // Returns the workers' metadata. Throws Timeout naming the step not finished, InvalidArgument
  // for an answer that is not bincode of WorkerMetadata.
  std::vector<dynamo::WorkerMetadata> handshake(
      const std::function<dynamo::LeaderMetadata(const std::vector<dynamo::WorkerMetadata>&)>& pools,
      std::chrono::milliseconds timeout);
  // Sends transfer_blocks and waits for every worker's ack. Throws Timeout naming how many acked.
  void transfer(const BlockTransferRequest& request, std::chrono::milliseconds timeout);
  // Sends [id, handler, frames...] and waits for world_size replies; returns each reply's
  // payload (empty for a plain ack). Throws Timeout.
  std::vector<std::string> send(const std::string& handler, const std::vector<std::string>& frames,
                                std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
