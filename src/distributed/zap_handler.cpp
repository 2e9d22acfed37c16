#include "distributed/zap_handler.hpp"

#include <array>
#include <zmq_addon.hpp>

#include "common/logger.hpp"
#include "common/make_error.hpp"

namespace kvbm {

ZapHandler::ZapHandler(zmq::context_t& context, const std::vector<std::string>& allowed)
    : socket_(context, zmq::socket_type::rep), allowed_(allowed.begin(), allowed.end()) {
  socket_.set(zmq::sockopt::linger, 0);
  try {
    socket_.bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& error) {
    throw make_error(ErrorCode::Io, "cannot start the CURVE authentication handler: {}", error.what());
  }
  thread_ = std::thread([this] { run(); });
}

ZapHandler::~ZapHandler() {
  stopping_ = true;
  thread_.join();
}

void ZapHandler::run() {
  while (!stopping_.load()) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> request;
      (void)zmq::recv_multipart(socket_, std::back_inserter(request));
      answer(request);
    } catch (const zmq::error_t& error) {
      if (error.num() == ETERM) return;
      log().error("CURVE authentication handler: {}", error.what());
    }
  }
}

void ZapHandler::answer(const std::vector<zmq::message_t>& request) {
  // Request: version, request id, domain, address, routing id, mechanism, credentials...
  // Reply: version, request id, status code, status text, user id, metadata.
  std::string status = "400";
  std::string text = "malformed request";
  if (request.size() >= 7 && request[0].to_string() == "1.0" && request[5].to_string() == "CURVE" &&
      request[6].size() == 32) {
    char z85[41];
    zmq_z85_encode(z85, static_cast<const std::uint8_t*>(request[6].data()), 32);
    if (allowed_.contains(z85)) {
      status = "200";
      text = "OK";
    } else {
      text = "unknown key";
      if (refused_.insert(z85).second) {
        log().warn("leader: refused a worker at {} whose key {} is not among the allowed ones (--auth-peers)",
                   request[3].to_string(), z85);
      }
    }
  }
  const std::string request_id = request.size() > 1 ? request[1].to_string() : std::string();
  const std::array<zmq::const_buffer, 6> reply = {zmq::str_buffer("1.0"), zmq::buffer(request_id), zmq::buffer(status),
                                                  zmq::buffer(text),       zmq::str_buffer(""),     zmq::str_buffer("")};
  (void)zmq::send_multipart(socket_, reply);
}

}  // namespace kvbm
