#include "kvbm/config/environment.hpp"

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "kvbm/common/error.hpp"
#include "kvbm/common/settings.hpp"

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

TransferConfig read_transfer(Reader& in) {
  TransferConfig config;
  config.max_transfer_batch_size = in.size("DYN_KVBM_MAX_TRANSFER_BATCH_SIZE", config.max_transfer_batch_size, 1, 1u << 20,
                                           "blocks per batch of a transfer (batches run concurrently)");
  config.memcpy_threads = in.size("KVBM_MEMCPY_THREADS", config.memcpy_threads, 0, 256, "threads for host copies (0: min(4, cores))");
  config.memcpy_parallel_bytes = in.size("KVBM_MEMCPY_PARALLEL_BYTES", config.memcpy_parallel_bytes, 1, SIZE_MAX,
                                         "a host copy this large is split across the threads");
  config.disk_backend = in.choice("KVBM_DISK_BACKEND", config.disk_backend, {"auto", "io_uring", "threads"},
                                  "disk I/O: io_uring, else pread/pwrite threads (auto)");
  config.disk_queue_depth = in.size("KVBM_DISK_QUEUE_DEPTH", config.disk_queue_depth, 1, 4096, "disk I/Os in flight");
  config.disk_io_bytes = in.size("KVBM_DISK_IO_BYTES", config.disk_io_bytes, kDirectIoAlignment, 1u << 30, "largest single disk I/O");
  config.bounce_buffer_bytes = in.size("KVBM_BOUNCE_BUFFER_BYTES", config.bounce_buffer_bytes, kDirectIoAlignment, 1ull << 32,
                                       "bytes of each two-hop bounce buffer (pinned with a GPU)");
  config.bounce_buffers = in.size("KVBM_BOUNCE_BUFFERS", config.bounce_buffers, 1, 1024, "two-hop bounce buffers");
  config.cuda_copy_engine = in.choice("KVBM_CUDA_COPY_PATH", config.cuda_copy_engine ? "copy_engine" : "kernel",
                                      {"kernel", "copy_engine"},
                                      "GPU copies: UVA copy kernel, or cudaMemcpyBatchAsync (no SMs)") == "copy_engine";
  config.cuda_copy_ctas = in.integer("KVBM_CUDA_COPY_CTAS", config.cuda_copy_ctas, 1, 1024, "copy-kernel CTAs (SMs it may use)");
  config.cuda_copy_threads = in.integer("KVBM_CUDA_COPY_THREADS", config.cuda_copy_threads, 32, 1024, "threads per copy-kernel CTA");
  config.cuda_copy_engine_streams =
      in.integer("KVBM_CUDA_CE_STREAMS", config.cuda_copy_engine_streams, 1, 16, "streams a copy-engine batch is spread over");
  config.cuda_copy_engine_call_copies = in.size("KVBM_CUDA_CE_CALL_COPIES", config.cuda_copy_engine_call_copies, 1,
                                                std::size_t{1} << 30, "most copies in one cudaMemcpyBatchAsync call");
  config.cuda_kernel_streams =
      in.integer("KVBM_CUDA_KERNEL_STREAMS", config.cuda_kernel_streams, 1, 8, "streams the copy kernel's batches take turns on");
  config.cuda_upload_descriptors = in.flag("KVBM_CUDA_UPLOAD_DESCRIPTORS", config.cuda_upload_descriptors,
                                           "kernel path: copy a batch's list to device memory first");
  config.cuda_block_kernel = in.flag("KVBM_CUDA_BLOCK_KERNEL", config.cuda_block_kernel,
                                     "kernel path: long batches travel as block pairs, located by the kernel");
  config.cuda_completion_spin_us =
      in.integer("KVBM_CUDA_SPIN_US", config.cuda_completion_spin_us, 0, 100000, "poll a CUDA event this long before sleeping");
  config.cuda_completion_watch_us = in.integer("KVBM_CUDA_WATCH_US", config.cuda_completion_watch_us, 0, 1000000,
                                               "watch a stream's progress word this long before sleeping");
  config.cuda_idle_spin_us =
      in.integer("KVBM_CUDA_IDLE_SPIN_US", config.cuda_idle_spin_us, 0, 100000, "completion thread polls for new work this long");
  config.capabilities.allow_gds = in.flag("KVBM_ALLOW_GDS", config.capabilities.allow_gds,
                                          "device <-> disk through cuFile (GPUDirect Storage) when it loads");
  config.cufile_library = in.text("KVBM_CUFILE_LIBRARY", config.cufile_library, "libcufile to load (empty: the default search)");
  config.cuda_batch_bytes =
      in.size("KVBM_CUDA_BATCH_BYTES", config.cuda_batch_bytes, 1, 1ull << 40, "direct GPU copies: batches grow to this many bytes");
  config.wait_spin_us = in.size("KVBM_WAIT_SPIN_US", config.wait_spin_us, 0, 1000000,
                                "TransferHandle::wait polls this long before sleeping");
  config.validate();
  return config;
}

std::chrono::microseconds read_message_spin(Reader& in, std::chrono::microseconds fallback) {
  return std::chrono::microseconds(in.size("KVBM_MESSAGE_SPIN_US", static_cast<std::size_t>(fallback.count()), 0, 1000000,
                                           "message threads poll this long after each message before sleeping"));
}

std::size_t read_max_message_bytes(Reader& in, std::size_t fallback) {
  return in.size("KVBM_MAX_MESSAGE_BYTES", fallback, 1024, std::size_t{1} << 32,
                 "largest message a worker serves or a leader sends and accepts");
}

WorkerOptions read_worker(Reader& in, WorkerOptions options) {
  options.concurrent_transfers = in.size("DYN_KVBM_MAX_CONCURRENT_TRANSFERS", options.concurrent_transfers, 1, 1024,
                                         "transfers a worker runs at once");
  options.message_spin = read_message_spin(in, options.message_spin);
  options.max_message_bytes = read_max_message_bytes(in, options.max_message_bytes);
  options.max_block_pairs = in.size("KVBM_MAX_BLOCK_PAIRS", options.max_block_pairs, 1, std::size_t{1} << 28,
                                    "most block pairs in one request a worker serves");
  options.leader_wait = std::chrono::milliseconds(in.size("KVBM_LEADER_WAIT_MS", static_cast<std::size_t>(options.leader_wait.count()),
                                                          1, kMaxMs, "a worker gives up when its leader is silent this long"));
  options.drain_timeout = std::chrono::milliseconds(in.size("KVBM_SHUTDOWN_DRAIN_MS",
                                                            static_cast<std::size_t>(options.drain_timeout.count()), 0, kMaxMs,
                                                            "a stopping worker lets running transfers finish this long"));
  return options;
}

LeaderOptions read_leader(Reader& in, LeaderOptions options) {
  options.message_spin = read_message_spin(in, options.message_spin);
  options.max_message_bytes = read_max_message_bytes(in, options.max_message_bytes);
  return options;
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

std::vector<Setting> describe() {
  Reader in;
  (void)read_log_level(in);
  (void)read_disk_dir(in);
  (void)read_transfer(in);
  (void)read_worker(in, WorkerOptions{});
  (void)read_leader(in, LeaderOptions{});
  return std::move(in.settings);
}

}  // namespace kvbm::environment
