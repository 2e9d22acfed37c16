// Control-path benchmark: round trips of tiny requests from a leader to W workers on loopback
// TCP (workers in this process, on their own threads and sockets). Rows: a no-op message (the
// messaging alone), a 1-block Host -> Disk transfer (O_DIRECT), and with a GPU a 1-block
// pinned Host -> Device transfer; the ceiling is a raw ZeroMQ echo over
// the same socket pattern (PUB -> SUB, PUSH -> PULL) with no kvbm code in the loop. With one
// worker, the "handler alone" rows run the same transfers without messaging, for the split.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <fmt/format.h>

#include "cuda/cuda_runtime.hpp"
#include "kvbm/distributed/leader.hpp"
#include "kvbm/distributed/worker.hpp"

using namespace std::chrono;
using namespace kvbm;

namespace {

struct Stats {
  double per_second;
  double p50_us;
  double p99_us;
};

Stats summarize(std::vector<double> micros, double seconds) {
  std::sort(micros.begin(), micros.end());
  return {static_cast<double>(micros.size()) / seconds, micros[micros.size() / 2], micros[micros.size() * 99 / 100]};
}

template <typename Fn>
Stats measure(int requests, Fn&& once) {
  for (int i = 0; i < requests / 10; ++i) once();  // warm-up
  std::vector<double> micros;
  const auto start = steady_clock::now();
  for (int i = 0; i < requests; ++i) {
    const auto t0 = steady_clock::now();
    once();
    micros.push_back(duration<double, std::micro>(steady_clock::now() - t0).count());
  }
  return summarize(std::move(micros), duration<double>(steady_clock::now() - start).count());
}

// The ceiling: W echo threads answering [id] to each published message, no kvbm code.
Stats raw_zmq(int workers, int requests, int port) {
  zmq::context_t context;
  zmq::socket_t pub(context, zmq::socket_type::pub), pull(context, zmq::socket_type::pull);
  pub.set(zmq::sockopt::linger, 0);
  pull.set(zmq::sockopt::linger, 0);
  pub.bind(fmt::format("tcp://127.0.0.1:{}", port));
  pull.bind(fmt::format("tcp://127.0.0.1:{}", port + 1));
  std::atomic<bool> stop{false};
  std::vector<std::thread> echoes;
  for (int w = 0; w < workers; ++w) {
    echoes.emplace_back([&] {
      zmq::socket_t sub(context, zmq::socket_type::sub), push(context, zmq::socket_type::push);
      sub.set(zmq::sockopt::subscribe, "");
      sub.set(zmq::sockopt::linger, 0);
      push.set(zmq::sockopt::linger, 0);
      sub.connect(fmt::format("tcp://127.0.0.1:{}", port));
      push.connect(fmt::format("tcp://127.0.0.1:{}", port + 1));
      while (!stop) {
        zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, milliseconds(20));
        if (!(item.revents & ZMQ_POLLIN)) continue;
        zmq::multipart_t message(sub);
        zmq::multipart_t reply;
        reply.addstr(message[0].to_string());
        reply.send(push);
      }
    });
  }
  // Wait until every echo thread is subscribed: publish probes until W answers arrive.
  for (int answered = 0; answered < workers;) {
    zmq::multipart_t probe;
    probe.addstr("probe");
    probe.send(pub);
    std::this_thread::sleep_for(milliseconds(20));
    answered = 0;
    zmq::message_t discard;
    while (pull.recv(discard, zmq::recv_flags::dontwait)) ++answered;
  }
  const Stats stats = measure(requests, [&] {
    zmq::multipart_t message;
    message.addstr("12345678");
    message.addstr("ping");
    message.send(pub);
    for (int got = 0; got < workers; ++got) {
      zmq::multipart_t reply(pull);
    }
  });
  stop = true;
  for (auto& echo : echoes) echo.join();
  return stats;
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = argc > 1 ? std::max(100, std::atoi(argv[1])) : 2000;
  const LayoutConfig config{.num_blocks = 64, .num_layers = 4, .outer_dim = 2, .page_size = 16, .inner_dim = 32,
                            .dtype_bytes = 2};  // a 1-block request moves 8 x 1 KiB chunks
  std::cout << fmt::format("{:>7} {:<22} {:>10} {:>9} {:>9} {:>13} {:>6}\n", "workers", "request", "req/s", "p50 us",
                           "p99 us", "raw zmq p50", "ratio");
  int port = 24000 + static_cast<int>(::getpid() % 1000) * 8;
  for (int workers : {1, 2, 4}) {
    const Stats raw = raw_zmq(workers, requests, port);
    port += 2;
    const std::string endpoint = fmt::format("tcp://127.0.0.1:{}", port);
    port += 2;
    Leader leader(endpoint, workers);
    std::vector<std::unique_ptr<Worker>> running;
    std::vector<std::thread> threads;
    std::vector<std::shared_ptr<BlockTransferHandler>> handlers;
    for (int rank = 0; rank < workers; ++rank) {
      auto context = std::make_shared<TransferContext>();
      DiskFileOptions disk;
      disk.directory = "/tmp";
      const bool gpu = cuda::device_count() > 0;
      BlockPools pools{gpu ? Layout::allocate(config, StorageKind::device(0), LayoutForm::LayerSeparate) : nullptr,
                       Layout::allocate(config, gpu ? StorageKind::pinned() : StorageKind::system(), LayoutForm::LayerSeparate),
                       Layout::allocate(config, StorageKind::disk(0), LayoutForm::FullyContiguous,
                                        LayerOrder::BlockContiguous, disk)};
      auto handler = std::make_shared<BlockTransferHandler>(pools, context, std::make_shared<ConnectorScheduler>());
      handlers.push_back(handler);
      running.push_back(std::make_unique<Worker>(WorkerOptions{endpoint, rank, workers, 4}, handler));
      threads.emplace_back([worker = running.back().get()] { (void)worker->run(); });
    }
    leader.wait_for_workers(seconds(30));
    const auto row = [&](const char* name, const Stats& stats) {
      std::cout << fmt::format("{:>7} {:<22} {:>10.0f} {:>9.1f} {:>9.1f} {:>13.1f} {:>6.2f}\n", workers, name,
                               stats.per_second, stats.p50_us, stats.p99_us, raw.p50_us, raw.p50_us / stats.p50_us);
    };
    row("no-op (kvbm.ping)", measure(requests, [&] {
          if (!leader.send(protocol::kPing, {}, seconds(5)).status.ok()) std::abort();
        }));
    // 1-block requests from the host pool, each to the next block of 64 (so no two in a row
    // write the same block), through the leader or, with one worker, straight to its handler.
    std::size_t block = 0;
    const auto one_block_to = [&](BlockTransferPool to) {
      const std::size_t from = block++ % 64;
      return BlockTransferRequest{BlockTransferPool::Host, to, {{from, (from + 1) % 64}}, std::nullopt};
    };
    std::vector<std::pair<const char*, BlockTransferPool>> destinations = {{"Disk", BlockTransferPool::Disk}};
    if (cuda::device_count() > 0) destinations.emplace_back("Device", BlockTransferPool::Device);
    for (const auto& [name, to] : destinations) {
      row(fmt::format("1 block Host->{}", name).c_str(), measure(requests, [&, to = to] {
            if (!leader.transfer(one_block_to(to), seconds(5)).status.ok()) std::abort();
          }));
    }
    // The same requests without the messaging: rank 0's handler runs them in this thread.
    for (const auto& [name, to] : destinations) {
      if (workers != 1) break;
      row(fmt::format("  handler alone: {}", name).c_str(), measure(requests, [&, to = to] {
            if (!handlers.front()->execute(one_block_to(to)).ok()) std::abort();
          }));
    }
    for (auto& worker : running) worker->stop();
    for (auto& thread : threads) thread.join();
  }
  return 0;
}
