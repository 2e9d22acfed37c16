#pragma once
// Serves the block manager's metrics (or any text) at GET /metrics in Prometheus text format,
// over HTTP from civetweb's threads. Binds loopback unless given another address.
#include <functional>
#include <memory>
#include <string>

namespace kvbm {

class MetricsServer {
 public:
  // Listens on address:port (port 0: one the system picks); `render` is called per request, on
  // a server thread. Throws Io naming the address when it cannot listen.
  MetricsServer(int port, std::function<std::string()> render, std::string address = "127.0.0.1");
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  [[nodiscard]] int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
