#include "distributed/message_receiver.hpp"

#include <cerrno>
#include <thread>

namespace kvbm {

std::optional<zmq::multipart_t> MessageReceiver::next(std::chrono::milliseconds wait) {
  calls_.fetch_add(1, std::memory_order_release);
  // A signal (SIGTERM to a worker) interrupts the poll or the receive with EINTR: that is no
  // message, and the caller gets to check whether it should stop.
  try {
    zmq::multipart_t message;
    bool received = false;
    while (!received && polling(Clock::now())) {
      received = message.recv(socket_, ZMQ_DONTWAIT);
      // Yielding keeps the poll polite where cores are few: a thread with work runs first.
      if (!received) std::this_thread::yield();
    }
    if (!received) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, wait);
      if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
      received = message.recv(socket_, ZMQ_DONTWAIT);
      if (!received) return std::nullopt;
    }
    busy_until_ = Clock::now() + spin_;
    return message;
  } catch (const zmq::error_t& error) {
    if (error.num() == EINTR) return std::nullopt;
    throw;
  }
}

}  // namespace kvbm
