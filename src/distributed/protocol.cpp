#include "kvbm/distributed/protocol.hpp"

namespace kvbm::protocol {

std::string encode_id(std::uint64_t id) {
  std::string frame(8, '\0');
  for (int i = 7; i >= 0; --i, id >>= 8) frame[static_cast<std::size_t>(i)] = static_cast<char>(id & 0xff);
  return frame;
}

std::uint64_t decode_id(const std::string& frame) {
  if (frame.size() != 8) {
    throw make_error(ErrorCode::InvalidArgument, "message id frame must be 8 bytes, got {}", frame.size());
  }
  std::uint64_t id = 0;
  for (unsigned char byte : frame) id = (id << 8) | byte;
  return id;
}

std::string reply_endpoint(const std::string& message_endpoint) {
  if (message_endpoint.rfind("tcp://", 0) == 0) {
    const auto colon = message_endpoint.rfind(':');
    const std::string port = message_endpoint.substr(colon + 1);
    int number = 0;
    try {
      number = std::stoi(port);
    } catch (const std::exception&) {
      number = 0;
    }
    if (colon < 6 || number <= 0 || number >= 65535 || std::to_string(number) != port) {
      throw make_error(ErrorCode::InvalidArgument, "endpoint '{}' needs a numeric port below 65535 (replies use port+1)",
                       message_endpoint);
    }
    return message_endpoint.substr(0, colon + 1) + std::to_string(number + 1);
  }
  if (message_endpoint.rfind("ipc://", 0) == 0) return message_endpoint + ".replies";
  throw make_error(ErrorCode::InvalidArgument, "endpoint '{}' is neither tcp://HOST:PORT nor ipc://PATH", message_endpoint);
}

std::string encode_outcome(const Outcome& outcome) {
  nlohmann::json out{{"rank", outcome.rank}, {"ok", outcome.status.ok()}};
  if (!outcome.status.ok()) {
    out["code"] = std::string(to_string(outcome.status.error().code()));
    out["error"] = outcome.status.error().message();
  }
  if (!outcome.data.is_null()) out["data"] = outcome.data;
  return out.dump();
}

namespace {
ErrorCode code_from(const std::string& name) {
  for (ErrorCode code : {ErrorCode::InvalidArgument, ErrorCode::OutOfRange, ErrorCode::Unsupported, ErrorCode::Io,
                         ErrorCode::Cuda, ErrorCode::Timeout, ErrorCode::Cancelled}) {
    if (to_string(code) == name) return code;
  }
  return ErrorCode::Internal;
}
}  // namespace

Outcome decode_outcome(const std::string& payload) {
  const auto json = nlohmann::json::parse(payload, nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("ok") || !json["ok"].is_boolean() ||
      !json.contains("rank") || !json["rank"].is_number_integer()) {
    throw make_error(ErrorCode::InvalidArgument, "malformed reply payload: {}", payload.substr(0, 200));
  }
  Outcome outcome;
  outcome.rank = json["rank"].get<int>();
  if (!json["ok"].get<bool>()) {
    outcome.status = Error(code_from(json.value("code", "")), json.value("error", "(no message)"));
  }
  if (json.contains("data")) outcome.data = json["data"];
  return outcome;
}

}  // namespace kvbm::protocol
