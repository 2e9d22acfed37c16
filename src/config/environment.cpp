#include "kvbm/config/environment.hpp"

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"
#include "kvbm/common/settings.hpp"
#include "kvbm/distributed/dynamo_protocol.hpp"

namespace kvbm::environment {
namespace {

// Reads variables and records each one read, so that describe() lists exactly what the
// readers use, with the options' own defaults.
class Reader {
 public:
  std::size_t size(const char* name, std::size_t fallback, std::size_t min, std::size_t max, const char* meaning) {
    const auto text = lookup(name);
    std::size_t value = fallback;
    if (text) {
      value = settings::parse_size(name, *text);
      if (value < min || value > max) {
        throw make_error(ErrorCode::InvalidArgument, "{}='{}' is out of range [{}, {}]", name, printable(*text), min, max);
      }
    }
    record(name, std::to_string(value), text.has_value(), meaning);
    return value;
  }

  template <typename Int>
  Int integer(const char* name, Int fallback, std::size_t min, std::size_t max, const char* meaning) {
    return static_cast<Int>(size(name, static_cast<std::size_t>(fallback), min, max, meaning));
  }

  bool flag(const char* name, bool fallback, const char* meaning) {
    const auto text = lookup(name);
    const bool value = text ? settings::parse_bool(name, *text) : fallback;
    record(name, value ? "1" : "0", text.has_value(), meaning);
    return value;
  }

  // One of `allowed` (the first is not special: `fallback` is the default).
  std::string choice(const char* name, std::string fallback, std::initializer_list<const char*> allowed,
                     const char* meaning) {
    const auto text = lookup(name);
    std::string value = text.value_or(fallback);
    if (text && std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return value == a; }) == allowed.end()) {
      throw make_error(ErrorCode::InvalidArgument, "{}='{}' is not one of {}", name, printable(value),
                       fmt::join(allowed, ", "));
    }
    record(name, value, text.has_value(), meaning);
    return value;
  }

  double real(const char* name, double fallback, double max, const char* meaning) {
    const auto text = lookup(name);
    double value = fallback;
    if (text) {
      char* end = nullptr;
      value = std::strtod(text->c_str(), &end);
      if (text->empty() || end != text->c_str() + text->size() || !(value >= 0 && value <= max)) {
        throw make_error(ErrorCode::InvalidArgument, "{}='{}' is not a number in [0, {}]", name, printable(*text), max);
      }
    }
    record(name, fmt::format("{}", value), text.has_value(), meaning);
    return value;
  }

  std::string text(const char* name, std::string fallback, const char* meaning) {
    const auto text = lookup(name);
    std::string value = text.value_or(std::move(fallback));
    record(name, value, text.has_value(), meaning);
    return value;
  }

  std::vector<Setting> settings;

 private:
  static std::optional<std::string> lookup(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  }
  // A variable read again (the worker and the leader share some) is listed once.
  void record(const char* name, std::string value, bool from_environment, const char* meaning) {
    const bool listed = std::any_of(settings.begin(), settings.end(), [&](const Setting& s) { return s.name == name; });
    if (!listed) settings.push_back({name, std::move(value), from_environment, meaning});
  }
};

constexpr std::size_t kMaxMs = std::size_t{1} << 40;

LatencyPolicy read_latency(Reader& in) {
  return *parse_latency_policy(in.choice("KVBM_LATENCY", "low", {"low", "balanced", "low_cpu"},
                                         "how long waiting threads poll before they sleep: low latency or low CPU"));
}

TransferConfig read_transfer(Reader& in) {
  TransferConfig config;
  config.max_transfer_batch_size = in.size("DYN_KVBM_MAX_TRANSFER_BATCH_SIZE", config.max_transfer_batch_size, 1, 1u << 20,
                                           "blocks per batch of a transfer (batches run concurrently)");
  config.memcpy_threads = in.size("KVBM_MEMCPY_THREADS", config.memcpy_threads, 0, 256, "threads for host copies (0: min(4, cores))");
  config.disk.backend = in.choice("KVBM_DISK_BACKEND", config.disk.backend, {"auto", "io_uring", "threads"},
                                  "disk I/O: io_uring, else pread/pwrite threads (auto)");
  config.disk.queue_depth = in.size("KVBM_DISK_QUEUE_DEPTH", config.disk.queue_depth, 1, 4096, "disk I/Os in flight");
  config.bounce_buffer_bytes = in.size("KVBM_BOUNCE_BUFFER_BYTES", config.bounce_buffer_bytes, kDirectIoAlignment, 1ull << 32,
                                       "bytes of each two-hop bounce buffer (pinned with a GPU)");
  config.bounce_buffers = in.size("KVBM_BOUNCE_BUFFERS", config.bounce_buffers, 1, 1024, "two-hop bounce buffers");
  config.cuda.copy_path = *parse_cuda_copy_path(in.choice("KVBM_CUDA_COPY_PATH", std::string(to_string(config.cuda.copy_path)),
                                                          {"kernel", "copy_engine", "auto"},
                                                          "GPU copies: UVA copy kernel, cudaMemcpyBatchAsync (no SMs), "
                                                          "or auto (the copy engine for large chunks)"));
  config.cuda.copy_ctas = in.integer("KVBM_CUDA_COPY_CTAS", config.cuda.copy_ctas, 1, 1024, "copy-kernel CTAs (SMs it may use)");
  config.capabilities.allow_gds = in.flag("KVBM_ALLOW_GDS", config.capabilities.allow_gds,
                                          "device <-> disk through cuFile (GPUDirect Storage) when it loads");
  config.cufile_library = in.text("KVBM_CUFILE_LIBRARY", config.cufile_library, "libcufile to load (empty: the default search)");
  config.latency = read_latency(in);
  config.validate();
  return config;
}

std::size_t read_max_message_bytes(Reader& in, std::size_t fallback) {
  return in.size("KVBM_MAX_MESSAGE_BYTES", fallback, 1024, std::size_t{1} << 32,
                 "largest message a worker serves or a leader sends and accepts");
}

WorkerOptions read_worker(Reader& in, WorkerOptions options) {
  options.concurrent_transfers = in.size("DYN_KVBM_MAX_CONCURRENT_TRANSFERS", options.concurrent_transfers, 1, 1024,
                                         "transfers a worker runs at once");
  options.max_waiting_transfers = in.size("KVBM_MAX_WAITING_TRANSFERS", options.max_waiting_transfers, 1,
                                          std::size_t{1} << 24, "transfers waiting for a slot that a worker keeps");
  options.latency = read_latency(in);
  options.max_message_bytes = read_max_message_bytes(in, options.max_message_bytes);
  options.max_block_pairs = in.size("KVBM_MAX_BLOCK_PAIRS", options.max_block_pairs, 1, std::size_t{1} << 28,
                                    "most block pairs in one request a worker serves");
  options.leader_wait = std::chrono::milliseconds(in.size("KVBM_LEADER_WAIT_MS", static_cast<std::size_t>(options.leader_wait.count()),
                                                          1, kMaxMs, "a worker gives up when its leader is silent this long"));
  options.nccl_timeout = std::chrono::milliseconds(in.size("KVBM_NCCL_TIMEOUT_MS", static_cast<std::size_t>(options.nccl_timeout.count()),
                                                         1, kMaxMs, "replicated mode: joining NCCL and each broadcast give up after this long"));
  options.drain_timeout = std::chrono::milliseconds(in.size("KVBM_SHUTDOWN_DRAIN_MS",
                                                            static_cast<std::size_t>(options.drain_timeout.count()), 0, kMaxMs,
                                                            "a stopping worker lets running transfers finish this long"));
  return options;
}

LeaderOptions read_leader(Reader& in, LeaderOptions options) {
  options.latency = read_latency(in);
  options.max_message_bytes = read_max_message_bytes(in, options.max_message_bytes);
  return options;
}

DynamoSettings read_dynamo(Reader& in) {
  DynamoSettings settings;
  settings.host = in.text("DYN_KVBM_LEADER_ZMQ_HOST", dynamo::kDefaultHost, "Dynamo mode: the leader's host");
  settings.pub_port = in.integer("DYN_KVBM_LEADER_ZMQ_PUB_PORT", dynamo::kDefaultPubPort, 1, 65535,
                                 "Dynamo mode: the leader's message port");
  settings.ack_port = in.integer("DYN_KVBM_LEADER_ZMQ_ACK_PORT", dynamo::kDefaultAckPort, 1, 65535,
                                 "Dynamo mode: the port workers reply to");
  settings.cpu_cache_gb = in.real("DYN_KVBM_CPU_CACHE_GB", 0, 1 << 20, "GiB of host pool (Dynamo's leader sizes workers' pools with it)");
  settings.disk_cache_gb = in.real("DYN_KVBM_DISK_CACHE_GB", 0, 1 << 30, "GiB of disk pool");
  settings.disk_cache_dir = in.text("DYN_KVBM_DISK_CACHE_DIR", "", "where the disk pool's file goes (else KVBM_DISK_DIR)");
  return settings;
}

std::string read_log_level(Reader& in) {
  return in.choice("KVBM_LOG", "info", {"trace", "debug", "info", "warn", "error", "critical", "off"}, "log level");
}

std::string read_disk_dir(Reader& in) { return in.text("KVBM_DISK_DIR", ".", "where disk pools and bench files are created"); }

}  // namespace

TransferConfig transfer_config() {
  Reader in;
  return read_transfer(in);
}

WorkerOptions worker_options(WorkerOptions given) {
  Reader in;
  return read_worker(in, std::move(given));
}

LeaderOptions leader_options(LeaderOptions given) {
  Reader in;
  return read_leader(in, std::move(given));
}

std::string log_level() {
  Reader in;
  return read_log_level(in);
}

std::string disk_dir() {
  Reader in;
  return read_disk_dir(in);
}

std::string DynamoSettings::pub_endpoint() const { return fmt::format("tcp://{}:{}", host, pub_port); }
std::string DynamoSettings::ack_endpoint() const { return fmt::format("tcp://{}:{}", host, ack_port); }

std::uint64_t DynamoSettings::blocks(double gb, std::uint64_t bytes_per_block) {
  if (bytes_per_block == 0) return 0;
  return static_cast<std::uint64_t>(gb * static_cast<double>(std::uint64_t{1} << 30)) / bytes_per_block;
}

DynamoSettings dynamo_settings() {
  Reader in;
  return read_dynamo(in);
}

std::vector<Setting> describe() {
  Reader in;
  (void)read_dynamo(in);
  (void)read_log_level(in);
  (void)read_disk_dir(in);
  (void)read_transfer(in);
  (void)read_worker(in, WorkerOptions{});
  (void)read_leader(in, LeaderOptions{});
  return std::move(in.settings);
}

}  // namespace kvbm::environment
