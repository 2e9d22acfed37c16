#include "distributed/connection_watch.hpp"

#include <atomic>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace kvbm {
namespace {

std::string next_monitor_address() {
  static std::atomic<std::uint64_t> next{0};
  return fmt::format("inproc://kvbm-connection-watch-{}", next.fetch_add(1));
}

}  // namespace

ConnectionWatch::ConnectionWatch(zmq::context_t& context, zmq::socket_t& socket)
    : socket_(socket), address_(next_monitor_address()), events_(context, zmq::socket_type::pair) {
  if (zmq_socket_monitor(socket_.handle(), address_.c_str(), ZMQ_EVENT_DISCONNECTED) != 0) throw zmq::error_t();
  events_.set(zmq::sockopt::linger, 0);
  events_.connect(address_);
}

ConnectionWatch::~ConnectionWatch() {
  if (socket_.handle() != nullptr) zmq_socket_monitor(socket_.handle(), nullptr, 0);
}

bool ConnectionWatch::dropped() {
  bool any = false;
  // Each event is two frames: (16-bit event, 32-bit value), then the peer's address.
  for (zmq::message_t frame; events_.recv(frame, zmq::recv_flags::dontwait);) {
    if (frame.size() >= sizeof(std::uint16_t)) {
      std::uint16_t event = 0;
      std::memcpy(&event, frame.data(), sizeof(event));
      any |= (event & ZMQ_EVENT_DISCONNECTED) != 0;
    }
    while (frame.more() && events_.recv(frame, zmq::recv_flags::dontwait)) {
    }
  }
  return any;
}

}  // namespace kvbm
