#include "kvbm/distributed/protocol.hpp"

#include <arpa/inet.h>

#include <climits>

#include "common/json_input.hpp"
#include "common/make_error.hpp"

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
                       printable(message_endpoint));
    }
    // A host of digits and dots is an IPv4 address, or no address at all (tcp://256.1.1.1:5000):
    // ZeroMQ would accept it and try to connect for ever.
    const std::string host = message_endpoint.substr(6, colon - 6);
    in_addr address{};
    if (!host.empty() && host.find_first_not_of("0123456789.") == std::string::npos &&
        inet_pton(AF_INET, host.c_str(), &address) != 1) {
      throw make_error(ErrorCode::InvalidArgument, "endpoint '{}': '{}' is not an IPv4 address",
                       printable(message_endpoint), printable(host));
    }
    return message_endpoint.substr(0, colon + 1) + std::to_string(number + 1);
  }
  if (message_endpoint.rfind("ipc://", 0) == 0) return message_endpoint + ".replies";
  throw make_error(ErrorCode::InvalidArgument, "endpoint '{}' is neither tcp://HOST:PORT nor ipc://PATH",
                   printable(message_endpoint));
}

std::string encode_outcome(const Outcome& outcome) {
  nlohmann::json out{{"rank", outcome.rank}, {"nonce", outcome.nonce}, {"ok", outcome.status.ok()}};
  if (!outcome.status.ok()) {
    out["code"] = std::string(to_string(outcome.status.error().code()));
    out["error"] = outcome.status.error().message();
  }
  // The data comes from this process's own handlers; text that is not JSON is a defect here.
  if (!outcome.data.empty()) out["data"] = nlohmann::json::parse(outcome.data);
  return json_input::dump(out);
}

Outcome decode_outcome(std::string_view payload) {
  const auto json = json_input::parse_object(payload, "reply payload");
  const auto* ok = json_input::find(json, "ok");
  const auto* rank = json_input::find(json, "rank");
  if (ok == nullptr || !ok->is_boolean()) {
    throw make_error(ErrorCode::InvalidArgument, "reply payload: 'ok' must be true or false, got {}",
                     ok ? json_input::describe(*ok) : "nothing");
  }
  if (rank == nullptr || !rank->is_number_integer() || rank->get<std::int64_t>() < INT_MIN ||
      rank->get<std::int64_t>() > INT_MAX) {
    throw make_error(ErrorCode::InvalidArgument, "reply payload: 'rank' must be an integer, got {}",
                     rank ? json_input::describe(*rank) : "nothing");
  }
  Outcome outcome;
  outcome.rank = static_cast<int>(rank->get<std::int64_t>());
  outcome.nonce = json_input::optional_u64(json, "nonce", "reply payload").value_or(0);
  if (!ok->get<bool>()) {
    const auto code = json_input::optional_string(json, "code", "reply payload", 64);
    const auto message = json_input::optional_string(json, "error", "reply payload", Error::kMaxErrorMessageBytes);
    outcome.status = Error(parse_error_code(code.value_or("")).value_or(ErrorCode::Internal),
                           message.value_or("(no message)"));
  }
  if (const auto* data = json_input::find(json, "data")) outcome.data = json_input::dump(*data);
  return outcome;
}

std::string encode_hello(const Hello& hello) {
  return json_input::dump({{"nonce", hello.nonce}, {"world_size", hello.world_size}, {"replicated", hello.replicated}});
}

Hello decode_hello(std::string_view text) {
  const auto data = json_input::parse_object(text, "hello data");
  Hello hello;
  hello.nonce = json_input::required_u64(data, "nonce", "hello data");
  const std::uint64_t world = json_input::required_u64(data, "world_size", "hello data");
  if (world == 0 || world > INT_MAX) {
    throw make_error(ErrorCode::InvalidArgument, "hello data: world_size {} is not a positive int", world);
  }
  hello.world_size = static_cast<int>(world);
  if (const auto* replicated = json_input::find(data, "replicated")) {
    if (!replicated->is_boolean()) {
      throw make_error(ErrorCode::InvalidArgument, "hello data: 'replicated' must be true or false, got {}",
                       json_input::describe(*replicated));
    }
    hello.replicated = replicated->get<bool>();
  }
  return hello;
}

}  // namespace kvbm::protocol
