// MessageReceiver on real ZeroMQ sockets (PUSH -> PULL over inproc): it hands over every
// message whole, in order, whether it is polling or sleeping, and gives up after the wait.
#include <gtest/gtest.h>

#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "distributed/message_receiver.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;

struct Pipe {
  zmq::context_t context;
  zmq::socket_t pull{context, zmq::socket_type::pull};
  zmq::socket_t push{context, zmq::socket_type::push};
  Pipe() {
    pull.set(zmq::sockopt::linger, 0);
    push.set(zmq::sockopt::linger, 0);
    pull.bind("inproc://receiver-test");
    push.connect("inproc://receiver-test");
  }
  void send(const std::string& first, const std::string& second) {
    zmq::multipart_t message;
    message.addstr(first);
    message.addstr(second);
    message.send(push);
  }
};

void expect_message(std::optional<zmq::multipart_t> message, const std::string& first, const std::string& second) {
  ASSERT_TRUE(message.has_value());
  ASSERT_EQ(message->size(), 2u);
  EXPECT_EQ((*message)[0].to_string(), first);
  EXPECT_EQ((*message)[1].to_string(), second);
}

TEST(MessageReceiver, NothingWithinTheWaitIsNullopt) {
  Pipe pipe;
  MessageReceiver receiver(pipe.pull, 0us);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(receiver.next(20ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 15ms);
}

TEST(MessageReceiver, SleepingAndPollingBothDeliverInOrder) {
  for (const auto spin : {0us, 50000us}) {
    Pipe pipe;
    MessageReceiver receiver(pipe.pull, spin);
    pipe.send("1", "first");
    expect_message(receiver.next(1s), "1", "first");
    // Sent while the receiver polls (or sleeps, with spin 0), from another thread: once the
    // receiver is inside its second next().
    std::thread sender([&] {
      while (receiver.calls() < 2) std::this_thread::yield();
      pipe.send("2", "second");
      pipe.send("3", "third");
    });
    expect_message(receiver.next(1s), "2", "second");
    expect_message(receiver.next(1s), "3", "third");
    sender.join();
    EXPECT_FALSE(receiver.next(10ms).has_value()) << "spin " << spin.count() << " us";
  }
}

}  // namespace
}  // namespace kvbm::testing
