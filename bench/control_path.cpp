// Control-path benchmark: round trips of tiny requests from a leader to W workers on loopback
// TCP, or Unix sockets with `ipc` as the second argument; the workers are threads of this process
// with their own sockets, or with `processes` as the third argument `kvbm worker` processes. Rows: a no-op message (the
// messaging alone), a 1-block Host -> Disk transfer (O_DIRECT), and with a GPU a 1-block
// pinned Host -> Device transfer; the ceiling is a raw ZeroMQ echo over
// the same socket pattern (PUB -> SUB, PUSH -> PULL) with no kvbm code in the loop. With one
// worker, the "handler alone" rows run the same transfers without messaging, for the split.
// The rows of one worker count, the raw echo included, are measured in ten interleaved rounds.
// With `pinned` as the fourth argument, each endpoint's message threads share a CPU of their own
// (see WorkerOptions::message_cpu), and the sending thread has another.
// With `curve` as the fifth argument, a second leader and set of workers run beside the plain
// ones with CURVE on (keys made for the run), and their rows, marked "CURVE", are measured in
// the same interleaved rounds: the cost of authentication and encryption on the control path.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <fmt/format.h>

#include "common/cpu_affinity.hpp"
#include "common/make_error.hpp"
#include "kvbm/distributed/curve_keys.hpp"
#include "distributed/message_receiver.hpp"
#include "distributed/socket_ends.hpp"
#include "kvbm/config/environment.hpp"
#include "kvbm/distributed/leader.hpp"
#include "kvbm/distributed/worker.hpp"
#include "platform/cuda_runtime.hpp"
#include "support/worker_process.hpp"

using namespace std::chrono;
using namespace kvbm;

namespace {

// The samples of one row. Rows are measured in rounds, taking turns, so that a shared machine
// whose speed drifts weighs on every row alike (one row after another, a quiet minute could
// favour whichever row it fell on).
struct Row {
  std::string name;
  std::function<void()> once;
  std::vector<double> micros;
  double seconds = 0;

  [[nodiscard]] double p50_us() const { return micros[micros.size() / 2]; }
  [[nodiscard]] double p99_us() const { return micros[micros.size() * 99 / 100]; }
  [[nodiscard]] double per_second() const { return static_cast<double>(micros.size()) / seconds; }
};

// `requests` timed round trips per row (after a tenth as many untimed), in `rounds` turns.
void measure(std::vector<Row>& rows, int requests, int rounds) {
  for (Row& row : rows) {
    for (int i = 0; i < requests / 10; ++i) row.once();
  }
  for (int round = 0; round < rounds; ++round) {
    for (Row& row : rows) {
      const auto start = steady_clock::now();
      for (int i = 0; i < requests / rounds; ++i) {
        const auto t0 = steady_clock::now();
        row.once();
        row.micros.push_back(duration<double, std::micro>(steady_clock::now() - t0).count());
      }
      row.seconds += duration<double>(steady_clock::now() - start).count();
    }
  }
  for (Row& row : rows) std::sort(row.micros.begin(), row.micros.end());
}

// The ceiling: W echo threads answering [id] to each published message, no kvbm code.
class RawEcho {
 public:
  // Requests go out on `endpoint`, replies come back on protocol::reply_endpoint(endpoint), as in
  // kvbm. `cpus` places the message threads as kvbm's: [0] the leader's, [1 + w] echo w's
  // (nullopt: not pinned).
  RawEcho(int workers, const std::string& endpoint, const std::vector<std::optional<int>>& cpus)
      : workers_(workers), context_(make_message_context(cpus[0])), pub_(context_, zmq::socket_type::xpub),
        pull_(context_, zmq::socket_type::pull) {
    bind_leader_end(pub_, pull_, endpoint);
    for (int w = 0; w < workers; ++w) echoes_.emplace_back([this, endpoint, cpu = cpus[1 + w]] { echo(endpoint, cpu); });
    // Wait until every echo thread is subscribed: publish probes until W answers arrive.
    for (int answered = 0; answered < workers;) {
      zmq::multipart_t probe;
      probe.addstr("probe");
      probe.send(pub_);
      std::this_thread::sleep_for(milliseconds(20));
      answered = 0;
      zmq::message_t discard;
      while (pull_.recv(discard, zmq::recv_flags::dontwait)) ++answered;
    }
  }
  ~RawEcho() {
    stop_ = true;
    for (auto& echo : echoes_) echo.join();
  }

  void once() {
    zmq::multipart_t message;
    message.addstr("12345678");
    message.addstr("ping");
    message.send(pub_);
    for (int got = 0; got < workers_;) got += replies_.next(seconds(5)).has_value();
  }

 private:
  void echo(const std::string& endpoint, std::optional<int> cpu) {
    const ScopedThreadCpu on_cpu(cpu);
    zmq::context_t context = make_message_context(cpu);
    zmq::socket_t sub(context, zmq::socket_type::sub), push(context, zmq::socket_type::push);
    connect_worker_end(sub, push, endpoint);
    MessageReceiver receiver(sub, spin_);  // polls after each message before sleeping, as kvbm's receivers
    while (!stop_) {
      auto message = receiver.next(milliseconds(20));
      if (!message) continue;
      zmq::multipart_t reply;
      reply.addstr((*message)[0].to_string());
      reply.send(push);
    }
  }

  int workers_;
  zmq::context_t context_;
  zmq::socket_t pub_;
  zmq::socket_t pull_;
  std::chrono::microseconds spin_{spin_budgets(environment::leader_options({}).latency).message};
  MessageReceiver replies_{pull_, spin_};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> echoes_;
};

// CURVE keys of one run: the leader's pair and one pair per rank; for `kvbm worker` processes
// also written as files (kvbm keygen's format) under a directory of this run.
struct RunKeys {
  CurveKeyPair leader;
  std::vector<CurveKeyPair> workers;
  std::string directory;  // holds leader.pub and worker<r>.key; empty: not written

  RunKeys(int count, bool write_files) : leader(generate_curve_keypair()) {
    for (int rank = 0; rank < count; ++rank) workers.push_back(generate_curve_keypair());
    if (!write_files) return;
    directory = fmt::format("/tmp/kvbm-control-keys-{}-{}", ::getpid(), count);
    std::filesystem::remove_all(directory);
    std::filesystem::create_directories(directory);
    write_curve_keypair(directory + "/leader", leader);
    for (int rank = 0; rank < count; ++rank) write_curve_keypair(fmt::format("{}/worker{}", directory, rank), workers[rank]);
  }
  ~RunKeys() {
    if (!directory.empty()) std::filesystem::remove_all(directory);
  }
  RunKeys(const RunKeys&) = delete;
  RunKeys& operator=(const RunKeys&) = delete;

  [[nodiscard]] LeaderOptions leader_options(const std::string& endpoint, std::optional<int> cpu) const {
    LeaderOptions options{.message_endpoint = endpoint, .world_size = static_cast<int>(workers.size()), .message_cpu = cpu};
    options.auth_key = leader;
    for (const auto& pair : workers) options.auth_peers.push_back(pair.public_key);
    return options;
  }
};

// The workers of one run: threads of this process, each with its own sockets and transfer
// context (their handlers can also be called directly), or `kvbm worker` processes.
struct Workers {
  std::vector<std::unique_ptr<Worker>> in_process;
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<BlockTransferHandler>> handlers;
  std::vector<std::unique_ptr<testing::WorkerProcess>> processes;  // killed and reaped when they go

  ~Workers() {
    for (auto& worker : in_process) worker->stop();
    for (auto& thread : threads) thread.join();
  }
};

// Device (with a GPU), Host and Disk pools of 64 blocks shaped as `config`: the first two
// layer-separate, the Disk pool fully contiguous.
// cpus[1 + rank] is each rank's message CPU.
void start_threads(Workers& workers, const std::string& endpoint, int count, const LayoutConfig& config, bool gpu,
                   const std::vector<std::optional<int>>& cpus, const RunKeys* keys) {
  for (int rank = 0; rank < count; ++rank) {
    auto context = std::make_shared<TransferContext>(environment::transfer_config());
    DiskFileOptions disk;
    disk.directory = "/tmp";
    BlockPools pools{gpu ? Layout::allocate(config, StorageKind::device(0), LayoutForm::LayerSeparate) : nullptr,
                     Layout::allocate(config, gpu ? StorageKind::pinned() : StorageKind::system(), LayoutForm::LayerSeparate),
                     Layout::allocate(config, StorageKind::disk(0), LayoutForm::FullyContiguous, LayerOrder::BlockContiguous,
                                      disk)};
    auto handler = std::make_shared<BlockTransferHandler>(pools, context, std::make_shared<ConnectorScheduler>());
    workers.handlers.push_back(handler);
    WorkerOptions options{endpoint, rank, count, 4, cpus[1 + rank]};
    if (keys != nullptr) {
      options.auth_key = keys->workers[rank];
      options.leader_public_key = keys->leader.public_key;
    }
    workers.in_process.push_back(std::make_unique<Worker>(std::move(options), handler));
    workers.threads.emplace_back([worker = workers.in_process.back().get()] { (void)worker->run(); });
  }
}

// The same pools in `kvbm worker` processes (one CUDA context each, as deployed).
void start_processes(Workers& workers, const std::string& endpoint, int count, const LayoutConfig& config, bool gpu,
                     const std::vector<std::optional<int>>& cpus, const RunKeys* keys) {
  for (int rank = 0; rank < count; ++rank) {
    std::vector<std::string> args = {"--leader", endpoint, "--rank", std::to_string(rank), "--world-size",
                                     std::to_string(count), "--host-blocks", std::to_string(config.num_blocks),
                                     "--disk-blocks", std::to_string(config.num_blocks), "--disk-dir", "/tmp",
                                     "--layout", "ls-block", "--disk-layout", "fc",
                                     "--num-layers", std::to_string(config.num_layers),
                                     "--outer-dim", std::to_string(config.outer_dim),
                                     "--page-size", std::to_string(config.page_size),
                                     "--inner-dim", std::to_string(config.inner_dim),
                                     "--dtype-bytes", std::to_string(config.dtype_bytes)};
    if (gpu) args.insert(args.end(), {"--device-blocks", std::to_string(config.num_blocks)});
    if (cpus[1 + rank]) args.insert(args.end(), {"--message-cpu", std::to_string(*cpus[1 + rank])});
    if (keys != nullptr) {
      args.insert(args.end(), {"--auth-key", fmt::format("{}/worker{}.key", keys->directory, rank), "--leader-pub",
                               keys->directory + "/leader.pub"});
    }
    workers.processes.push_back(std::make_unique<testing::WorkerProcess>(testing::kvbm_cli(KVBM_CLI_PATH), args));
    if (!workers.processes.back()->started()) throw make_error(ErrorCode::Io, "cannot start worker process {}", rank);
  }
}

int run(int argc, char** argv) {
  const int requests = argc > 1 ? std::max(100, std::atoi(argv[1])) : 2000;
  const std::string transport = argc > 2 ? argv[2] : "tcp";
  const std::string mode = argc > 3 ? argv[3] : "threads";
  const std::string placement = argc > 4 ? argv[4] : "free";
  const std::string security = argc > 5 ? argv[5] : "plain";
  if ((transport != "tcp" && transport != "ipc") || (mode != "threads" && mode != "processes") ||
      (placement != "free" && placement != "pinned") || (security != "plain" && security != "curve")) {
    std::cerr << "usage: kvbm_control_bench [REQUESTS] [tcp|ipc] [threads|processes] [free|pinned] [plain|curve]; got '"
              << transport << "', '" << mode << "', '" << placement << "', '" << security << "'\n";
    return 2;
  }
  // Fresh endpoints for each ZeroMQ setup: loopback TCP ports, or Unix sockets under /tmp.
  int serial = 0;
  std::vector<std::string> socket_files;  // ZeroMQ leaves them behind
  const auto next_endpoint = [&] {
    const int n = serial++;
    // Below Linux's ephemeral range (from 32768), where a connection's own end may already hold
    // the port ("Address already in use"): up to 18 ports a run, a slot of 30 per process id.
    if (transport == "tcp") return fmt::format("tcp://127.0.0.1:{}", 20000 + (::getpid() % 400) * 30 + 2 * n);
    const std::string path = fmt::format("/tmp/kvbm-control-{}-{}", ::getpid(), n);
    socket_files.insert(socket_files.end(), {path, path + ".replies"});
    return "ipc://" + path;
  };
  constexpr int kRounds = 10;
  const LayoutConfig config{.num_blocks = 64, .num_layers = 4, .outer_dim = 2, .page_size = 16, .inner_dim = 32,
                            .dtype_bytes = 2};  // a 1-block request moves 8 x 1 KiB chunks
  std::cout << fmt::format("{:>7} {:<28} {:>10} {:>9} {:>9} {:>13} {:>6}\n", "workers", "request", "req/s", "p50 us",
                           "p99 us", "raw zmq p50", "ratio");
  const bool gpu = cuda::device_count() > 0;
  const std::vector<int> usable = calling_thread_cpus();
  for (int workers : {1, 2, 4}) {
    // Pinned: the leader's message threads on the first usable CPU, rank r's on the (2 + r)-th,
    // and this thread, which sends, on the next (wrapping where the CPUs are fewer). Sharing the
    // leader's CPU, the sender slowed 2-worker round trips by 5-15 us. The raw echo's leader end,
    // which receives on the sending thread, has its I/O thread on the sender's CPU.
    std::vector<std::optional<int>> cpus(1 + static_cast<std::size_t>(workers));
    std::optional<int> sender;
    if (placement == "pinned") {
      for (std::size_t i = 0; i < cpus.size(); ++i) cpus[i] = usable[i % usable.size()];
      sender = usable[cpus.size() % usable.size()];
    }
    const ScopedThreadCpu on_sender_cpu(sender);
    std::vector<std::optional<int>> raw_cpus = cpus;
    raw_cpus[0] = sender;
    RawEcho raw(workers, next_endpoint(), raw_cpus);
    const std::string endpoint = next_endpoint();
    Leader leader(endpoint, workers, cpus[0]);
    Workers running;
    if (mode == "threads") start_threads(running, endpoint, workers, config, gpu, cpus, nullptr);
    else start_processes(running, endpoint, workers, config, gpu, cpus, nullptr);
    leader.wait_for_workers(seconds(30));
    // With `curve`: the same again, every message authenticated and encrypted.
    std::unique_ptr<RunKeys> keys;
    std::unique_ptr<Leader> curve_leader;
    Workers curve_running;
    if (security == "curve") {
      keys = std::make_unique<RunKeys>(workers, mode == "processes");
      const std::string curve_endpoint = next_endpoint();
      curve_leader = std::make_unique<Leader>(keys->leader_options(curve_endpoint, cpus[0]));
      if (mode == "threads") start_threads(curve_running, curve_endpoint, workers, config, gpu, cpus, keys.get());
      else start_processes(curve_running, curve_endpoint, workers, config, gpu, cpus, keys.get());
      curve_leader->wait_for_workers(seconds(30));
    }

    // 1-block requests from the host pool, each to the next block of 64 (so no two in a row
    // write the same block), through the leader or, with one worker thread, straight to its handler.
    std::size_t block = 0;
    const auto one_block_to = [&](BlockTransferPool to) {
      const std::size_t from = block++ % 64;
      return BlockTransferRequest{BlockTransferPool::Host, to, {{from, (from + 1) % 64}}, std::nullopt};
    };
    std::vector<std::pair<std::string, BlockTransferPool>> destinations = {{"Disk", BlockTransferPool::Disk}};
    if (gpu) destinations.emplace_back("Device", BlockTransferPool::Device);
    std::vector<Row> rows;
    rows.push_back({"raw zmq echo", [&] { raw.once(); }});
    const auto add_leader_rows = [&](Leader& through, const std::string& suffix) {
      rows.push_back({"no-op (kvbm.ping)" + suffix, [&] {
                        if (!through.send(protocol::kPing, {}, seconds(5)).status.ok()) std::abort();
                      }});
      for (const auto& [name, to] : destinations) {
        rows.push_back({fmt::format("1 block Host->{}{}", name, suffix), [&, to = to] {
                          if (!through.transfer(one_block_to(to), seconds(5)).status.ok()) std::abort();
                        }});
      }
    };
    add_leader_rows(leader, "");
    if (curve_leader) add_leader_rows(*curve_leader, " CURVE");
    // The same requests without the messaging: rank 0's handler runs them in this thread.
    for (const auto& [name, to] : destinations) {
      if (workers != 1 || running.handlers.empty()) break;
      rows.push_back({fmt::format("  handler alone: {}", name), [&, to = to] {
                        running.handlers.front()->execute(one_block_to(to));  // throws (ends the bench) on failure
                      }});
    }
    measure(rows, requests, kRounds);
    const double raw_p50 = rows.front().p50_us();
    for (const Row& row : rows) {
      if (&row == &rows.front()) continue;
      std::cout << fmt::format("{:>7} {:<28} {:>10.0f} {:>9.1f} {:>9.1f} {:>13.1f} {:>6.2f}\n", workers, row.name,
                               row.per_second(), row.p50_us(), row.p99_us(), raw_p50, raw_p50 / row.p50_us());
    }
    for (Leader* through : {&leader, curve_leader.get()}) {
      if (through != nullptr && !through->send(protocol::kShutdown, {}, seconds(5)).status.ok()) {
        std::cerr << "a worker did not shut down\n";
      }
    }
  }
  for (const auto& path : socket_files) std::filesystem::remove(path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {  // a worker that did not start or register, a port in use
    std::cerr << "kvbm_control_bench: " << error.what() << "\n";
    return 1;
  }
}
