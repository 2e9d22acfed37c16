#include "kvbm/manager/metrics_server.hpp"

#include <civetweb.h>

#include <array>

#include "common/make_error.hpp"

namespace kvbm {

struct MetricsServer::Impl {
  std::function<std::string()> render;
  mg_context* context = nullptr;
  int port = 0;

  static int serve(mg_connection* connection, void* data) {
    auto* self = static_cast<Impl*>(data);
    std::string body;
    int status = 200;
    try {
      body = self->render();
    } catch (...) {
      body = current_exception_as_error("metrics").message() + "\n";
      status = 500;
    }
    mg_printf(connection,
              "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n",
              status, status == 200 ? "OK" : "Internal Server Error", body.size());
    mg_write(connection, body.data(), body.size());
    return status;
  }
};

MetricsServer::MetricsServer(int port, std::function<std::string()> render, std::string address)
    : impl_(std::make_unique<Impl>()) {
  if (port < 0 || port > 65535) throw make_error(ErrorCode::InvalidArgument, "metrics port {} is outside [0, 65535]", port);
  if (!render) throw make_error(ErrorCode::InvalidArgument, "metrics server: no render function");
  impl_->render = std::move(render);
  const std::string listen = address + ":" + std::to_string(port);
  std::array<const char*, 5> options = {"listening_ports", listen.c_str(), "num_threads", "2", nullptr};
  mg_callbacks callbacks{};
  impl_->context = mg_start(&callbacks, nullptr, options.data());
  if (impl_->context == nullptr) {
    throw make_error(ErrorCode::Io, "metrics server cannot listen on {} (in use, or not an address of this host)",
                     printable(listen));
  }
  mg_set_request_handler(impl_->context, "/metrics", &Impl::serve, impl_.get());
  std::array<mg_server_port, 1> ports{};
  if (mg_get_server_ports(impl_->context, static_cast<int>(ports.size()), ports.data()) > 0) impl_->port = ports[0].port;
}

MetricsServer::~MetricsServer() {
  if (impl_->context) mg_stop(impl_->context);
}

int MetricsServer::port() const { return impl_->port; }

}  // namespace kvbm
