#include "distributed/connection_watch.hpp"

#include <atomic>
#include <cstring>

#include <fmt/format.h>

namespace kvbm {
namespace {

std::string next_monitor_address() {
  static std::atomic<std::uint64_t> next{0};
  return fmt::format("inproc://kvbm-connection-watch-{}", next.fetch_add(1));
}

}  // namespace

ConnectionWatch::ConnectionWatch(zmq::context_t& context, zmq::socket_t& socket, int events)
    : socket_(socket), address_(next_monitor_address()), events_(context, zmq::socket_type::pair) {
  if (zmq_socket_monitor(socket_.handle(), address_.c_str(), events) != 0) throw zmq::error_t();
  events_.set(zmq::sockopt::linger, 0);
  events_.connect(address_);
}

ConnectionWatch::~ConnectionWatch() {
  if (socket_.handle() != nullptr) zmq_socket_monitor(socket_.handle(), nullptr, 0);
}

std::vector<SocketEvent> ConnectionWatch::take() {
  std::vector<SocketEvent> out;
  // Each event is two frames: (16-bit event, 32-bit value), then the peer's address.
  for (zmq::message_t frame; events_.recv(frame, zmq::recv_flags::dontwait);) {
    SocketEvent event;
    if (frame.size() >= sizeof(event.event) + sizeof(event.value)) {
      std::memcpy(&event.event, frame.data(), sizeof(event.event));
      std::memcpy(&event.value, static_cast<const char*>(frame.data()) + sizeof(event.event), sizeof(event.value));
    }
    if (frame.more() && events_.recv(frame, zmq::recv_flags::dontwait)) event.address = frame.to_string();
    while (frame.more() && events_.recv(frame, zmq::recv_flags::dontwait)) {
    }
    out.push_back(std::move(event));
  }
  return out;
}

std::string describe_handshake_failure(const SocketEvent& event) {
  switch (event.event) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      return fmt::format("{} refused the key (ZAP status {})", event.address.empty() ? "the peer" : event.address,
                         event.value);
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      return fmt::format("the handshake with {} broke its protocol (error {:#x}): one side uses CURVE keys, the other "
                         "does not, or the keys do not match", event.address, event.value);
    default:
      return fmt::format("the handshake with {} failed ({}): one side uses CURVE keys, the other does not, or the keys "
                         "do not match", event.address, std::strerror(static_cast<int>(event.value)));
  }
}

}  // namespace kvbm
