#pragma once
// ZeroMQ's authentication handler (ZAP, rfc.zeromq.org/spec/27) for the CURVE server sockets of
// one context: it accepts a client whose public key is among the allowed ones and refuses any
// other, logging each refused key once. Made before the server sockets bind; its thread
// answers until it is destroyed.
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

namespace kvbm {

class ZapHandler {
 public:
  // `allowed`: public keys in Z85. Throws Io when the handler's endpoint is taken.
  ZapHandler(zmq::context_t& context, const std::vector<std::string>& allowed);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

 private:
  void run();
  void answer(const std::vector<zmq::message_t>& request);

  zmq::socket_t socket_;
  std::set<std::string> allowed_;  // Z85
  std::set<std::string> refused_;  // logged already
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace kvbm
