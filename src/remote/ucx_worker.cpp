#include "remote/ucx_worker.hpp"

#include <poll.h>

#include "common/logger.hpp"
#include "common/make_error.hpp"

namespace kvbm::remote {
namespace {

// How long the thread keeps spinning after the last sign of activity before it sleeps: a
// stream of incoming messages then costs no wake-ups.
constexpr auto kSpinAfterActivity = std::chrono::milliseconds(2);
// The longest sleep, in case a transport cannot wake the worker's event descriptor.
constexpr int kLongestSleepMs = 50;

struct ConfigGuard {
  ucp_config_t* config = nullptr;
  ~ConfigGuard() {
    if (config) ucp_config_release(config);
  }
};

}  // namespace

void throw_ucx(ucs_status_t status, const std::string& what) {
  throw make_error(ErrorCode::Unsupported, "UCX {}: {}", what, ucs_status_string(status));
}

UcxWorker::UcxWorker(const UcxWorkerOptions& options) {
  ConfigGuard config;
  ucs_status_t status = ucp_config_read(nullptr, nullptr, &config.config);
  if (status != UCS_OK) throw_ucx(status, "reading the configuration");
  if ((status = ucp_config_modify(config.config, "TLS", options.transports.c_str())) != UCS_OK) {
    throw make_error(ErrorCode::InvalidArgument, "UCX transports '{}': {}", options.transports, ucs_status_string(status));
  }
  if ((status = ucp_config_modify(config.config, "NET_DEVICES", options.net_devices.c_str())) != UCS_OK) {
    throw make_error(ErrorCode::InvalidArgument, "UCX network devices '{}': {}", options.net_devices,
                     ucs_status_string(status));
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
  if ((status = ucp_init(&params, config.config, &context_)) != UCS_OK) {
    throw_ucx(status, "init with transports '" + options.transports + "'");
  }
  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SINGLE;  // every call is made on thread_
  if ((status = ucp_worker_create(context_, &worker_params, &worker_)) != UCS_OK) {
    ucp_cleanup(context_);
    throw_ucx(status, "worker creation");
  }
  ucp_address_t* address = nullptr;
  std::size_t address_bytes = 0;
  status = ucp_worker_get_address(worker_, &address, &address_bytes);
  if (status == UCS_OK) status = ucp_worker_get_efd(worker_, &event_fd_);
  if (status != UCS_OK) {
    if (address) ucp_worker_release_address(worker_, address);
    ucp_worker_destroy(worker_);
    ucp_cleanup(context_);
    throw_ucx(status, "worker address or event descriptor");
  }
  address_.assign(reinterpret_cast<const char*>(address), address_bytes);
  ucp_worker_release_address(worker_, address);
  thread_ = std::thread([this] { run(); });
}

UcxWorker::~UcxWorker() {
  if (thread_.joinable()) stop({});
  ucp_worker_destroy(worker_);
  ucp_cleanup(context_);
}

void UcxWorker::post(std::function<void()> command) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    commands_.push_back(std::move(command));
  }
  ucp_worker_signal(worker_);  // thread-safe: wakes the thread from its sleep on event_fd_
}

void UcxWorker::set_tick(std::function<void(Clock::time_point)> tick) {
  call([&] { tick_ = std::move(tick); });
}

void UcxWorker::stop(std::function<void()> last) {
  post([this, last = std::move(last)] {
    if (last) last();
    std::lock_guard lock(mutex_);
    stopping_ = true;
  });
  thread_.join();
}

bool UcxWorker::run_commands() {
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(commands_);
  }
  for (auto& command : batch) command();
  return !batch.empty();
}

void UcxWorker::run() {
  auto last_activity = Clock::now();
  while (true) {
    const bool ran = run_commands();
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    const unsigned progressed = ucp_worker_progress(worker_);
    const auto now = Clock::now();
    if (outstanding_ > 0 && tick_) tick_(now);
    if (ran || progressed > 0 || outstanding_ > 0) {
      last_activity = now;
      continue;
    }
    if (now - last_activity < kSpinAfterActivity) continue;
    // Arm, then look for commands once more: a post after this look signals the armed worker.
    const ucs_status_t armed = ucp_worker_arm(worker_);
    if (armed == UCS_ERR_BUSY) continue;
    if (armed != UCS_OK) log().warn("UCX worker arm: {}", ucs_status_string(armed));
    {
      std::lock_guard lock(mutex_);
      if (!commands_.empty()) continue;
    }
    pollfd wake{event_fd_, POLLIN, 0};
    if (::poll(&wake, 1, kLongestSleepMs) > 0) last_activity = Clock::now();
  }
}

}  // namespace kvbm::remote
