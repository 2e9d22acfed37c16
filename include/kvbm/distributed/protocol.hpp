#pragma once
// Framing on ZeroMQ, as Dynamo's KVBM does it: the leader binds PUB (messages) and PULL
// (replies); workers SUB and PUSH. A message is [id: 8-byte big-endian, handler, data...]; a
// reply is [id] (Dynamo's plain ack) or [id, handler, payload]. kvbm's payload is JSON with the
// rank, the worker's incarnation nonce and the outcome, so the leader can tell success from
// failure and a rank's process from an impostor or a restarted one.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/common/error.hpp"

namespace kvbm::protocol {

inline constexpr const char* kTransferHandler = "transfer_blocks";
inline constexpr const char* kHello = "kvbm.hello";         // handshake: the leader asks until all ranks answer; a worker also announces itself
inline constexpr const char* kReject = "kvbm.reject";       // the leader refuses a worker (rank taken or out of range)
inline constexpr const char* kCancel = "kvbm.cancel";       // {"uuid": ...}: cancel a connector operation not yet started
inline constexpr const char* kPing = "kvbm.ping";           // no-op: the control path alone
inline constexpr const char* kFill = "kvbm.fill";           // {"pool","blocks","seed"}: random bytes into blocks
inline constexpr const char* kHash = "kvbm.hash";           // {"pool","blocks"}: XXH3 of each block
inline constexpr const char* kShutdown = "kvbm.shutdown";   // the worker exits after acknowledging
inline constexpr const char* kNcclId = "kvbm.nccl_id";      // replicated mode: rank 0 answers {"nccl_id": a new id}
inline constexpr const char* kNcclInit = "kvbm.nccl_init";
// Remote transfers (distributed/remote_service.hpp says what each carries).
inline constexpr const char* kRemoteMetadata = "kvbm.remote_metadata";
inline constexpr const char* kRemoteImport = "kvbm.remote_import";
inline constexpr const char* kRemoteTransfer = "kvbm.remote_transfer";  // {"nccl_id"}: every rank joins that communicator

[[nodiscard]] std::string encode_id(std::uint64_t id);
// Throws InvalidArgument unless the frame is exactly 8 bytes.
[[nodiscard]] std::uint64_t decode_id(const std::string& frame);

// The reply endpoint that goes with a message endpoint: tcp port + 1, or ipc path + ".replies".
[[nodiscard]] std::string reply_endpoint(const std::string& message_endpoint);

struct Outcome {
  int rank = -1;            // -1: a plain Dynamo ack, which names no rank
  std::uint64_t nonce = 0;  // the replying worker process's incarnation (0: none given)
  Status status;
  std::string data;         // handler-specific results (hashes, ...) as JSON text; empty: none
};

[[nodiscard]] std::string encode_outcome(const Outcome& outcome);
// Throws InvalidArgument naming what is wrong with the payload; nothing else escapes. An
// unknown error code reads as Internal; a missing message as "(no message)".
[[nodiscard]] Outcome decode_outcome(std::string_view payload);

// A worker's handshake data, {"nonce":N,"world_size":W,"replicated":B}, as an Outcome's data.
struct Hello {
  std::uint64_t nonce = 0;
  int world_size = 0;
  bool replicated = false;  // the worker runs in replicated mode ("replicated": true; absent: false)
};
[[nodiscard]] std::string encode_hello(const Hello& hello);
// Throws InvalidArgument naming what is wrong with `data`.
[[nodiscard]] Hello decode_hello(std::string_view data);

}  // namespace kvbm::protocol
