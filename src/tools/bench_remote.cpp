#include "bench_remote.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "bench_tier.hpp"
#include "common/make_error.hpp"
#include "distributed/remote_service.hpp"
#include "kvbm/remote/remote_agent.hpp"

extern char** environ;

namespace kvbm::tools {
namespace {

using Clock = std::chrono::steady_clock;

// A child process with its standard input and output on pipes; killed and reaped on the way out.
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::vector<std::string>& extra_env, bool search_path) {
    int in[2], out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) throw make_error(ErrorCode::Io, "pipe: {}", std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, in[1]);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env_strings(extra_env);
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& entry : env_strings) envp.push_back(entry.data());
    envp.push_back(nullptr);
    const int failed = search_path ? posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data())
                                   : posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    to_child_ = in[1];
    from_child_ = ::fdopen(out[0], "r");
    if (failed != 0) {
      pid_ = -1;
      throw make_error(ErrorCode::Io, "cannot start {}: {}", args[0], std::strerror(failed));
    }
  }
  ~Child() {
    ::close(to_child_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (from_child_) std::fclose(from_child_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The next line of its output; nullopt at its end.
  std::optional<std::string> line() {
    char* text = nullptr;
    std::size_t capacity = 0;
    const ssize_t got = ::getline(&text, &capacity, from_child_);
    std::optional<std::string> out;
    if (got >= 0) out = std::string(text, got > 0 && text[got - 1] == '\n' ? got - 1 : got);
    std::free(text);
    return out;
  }
  int wait() {
    int status = 0;
    ::waitpid(std::exchange(pid_, -1), &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int to_child_ = -1;
  std::FILE* from_child_ = nullptr;
};

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw make_error(ErrorCode::Io, "no free loopback port: {}", std::strerror(errno));
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

// ucx_perftest's overall bandwidth (GB/s) for `test` at `size`, server and client on loopback.
double perftest_gbps(const std::string& test, const std::string& transports, std::size_t size, std::size_t iterations) {
  const std::vector<std::string> env{"UCX_TLS=" + transports, "UCX_NET_DEVICES=lo"};
  for (int attempt = 0; attempt < 20; ++attempt) {
    const std::string port = std::to_string(free_port());
    Child server({"ucx_perftest", "-p", port}, env, true);
    // The client cannot know when the server listens: it tries again (a bench, not a test).
    for (int connect = 0; connect < 50; ++connect) {
      Child client({"ucx_perftest", "127.0.0.1", "-p", port, "-t", test, "-s", std::to_string(size), "-n",
                    std::to_string(iterations)},
                   env, true);
      std::optional<double> gbps;
      while (auto line = client.line()) {
        if (!line->starts_with("Final:")) continue;
        std::istringstream fields(line->substr(6));
        double value = 0;
        std::vector<double> numbers;
        while (fields >> value) numbers.push_back(value);
        if (numbers.size() >= 6) gbps = numbers[5] * 1048576.0 / 1e9;  // overall MB/s (MiB)
      }
      const int status = client.wait();
      if (gbps) return *gbps;
      if (status != 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  throw make_error(ErrorCode::Io, "ucx_perftest {} over {} at {} bytes gave no result", test, transports, size);
}

struct Row {
  std::size_t size = 0;
  // Distinct blocks (what a KV cache moves) against the ceiling for them: one memcpy a block of
  // the same blocks, in the same order, between two buffers of this process (what a shared-
  // memory transport cannot beat: it too reads and writes every byte once). Then one block over
  // and over, as ucx_perftest moves it (its buffers stay in cache), beside ucx_perftest.
  double put_gbps = 0, put_ceiling = 0, put_same_gbps = 0, put_perftest = 0;
  double get_gbps = 0, get_ceiling = 0, get_same_gbps = 0, get_perftest = 0;
  bool verified = false;
};

// The distinct-block ceiling: `pairs` copied with one memcpy a block from `from` to `to`.
double memcpy_gbps(const Layout& from, const Layout& to, const std::vector<BlockPair>& pairs, std::size_t size) {
  const auto* source = static_cast<const std::byte*>(from.regions().front()->data());
  auto* destination = static_cast<std::byte*>(to.regions().front()->data());
  const auto begin = Clock::now();
  for (const auto& [src, dst] : pairs) std::memcpy(destination + dst * size, source + src * size, size);
  return double(pairs.size() * size) / std::chrono::duration<double>(Clock::now() - begin).count() / 1e9;
}

double timed_gbps(const std::function<TransferHandle()>& start, std::size_t bytes) {
  const auto begin = Clock::now();
  start().wait().throw_if_error();
  return double(bytes) / std::chrono::duration<double>(Clock::now() - begin).count() / 1e9;
}

}  // namespace

int run_remote_bench(const RemoteBenchOptions& options) {
  std::vector<std::string> sizes;
  for (std::size_t size : options.sizes) sizes.push_back(std::to_string(size));
  std::string joined;
  for (const auto& size : sizes) joined += (joined.empty() ? "" : ",") + size;
  Child target({"/proc/self/exe", "remote-target", "--transports", options.transports, "--sizes", joined, "--bytes",
                std::to_string(options.bytes)},
               {}, false);
  const auto metadata = target.line();
  if (!metadata) throw make_error(ErrorCode::Io, "kvbm remote-target ended without its metadata");
  RemoteAgent agent({.name = "bench", .transports = options.transports, .lanes = options.lanes});
  const std::string peer = agent.import_peer(from_hex(*metadata, "remote-target metadata"));

  std::vector<Row> rows;
  std::mt19937_64 rng(20261130);
  for (std::size_t k = 0; k < options.sizes.size(); ++k) {
    const std::size_t size = options.sizes[k];
    const std::size_t blocks = std::max<std::size_t>(1, options.bytes / size);
    std::cerr << fmt::format("[{}/{}] {} blocks of {} over {} ...\n", k + 1, options.sizes.size(), blocks,
                             human_size(size), options.transports);
    const LayoutConfig config{.num_blocks = blocks, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = size,
                              .dtype_bytes = 1};
    const auto source = Layout::allocate(config, StorageKind::system(), LayoutForm::FullyContiguous);
    const auto back = Layout::allocate(config, StorageKind::system(), LayoutForm::FullyContiguous);
    const auto scratch = Layout::allocate(config, StorageKind::system(), LayoutForm::FullyContiguous);  // the ceiling's
    std::memset(scratch->regions().front()->data(), 0, scratch->regions().front()->size());
    auto* bytes = reinterpret_cast<std::uint64_t*>(source->regions().front()->data());
    for (std::size_t i = 0; i < blocks * size / 8; ++i) bytes[i] = rng();
    std::memset(back->regions().front()->data(), 0xee, back->regions().front()->size());
    // Reversed, so that no two blocks merge into one operation: one put or get per block.
    std::vector<BlockPair> out, in;
    for (std::size_t b = 0; b < blocks; ++b) {
      out.emplace_back(b, blocks - 1 - b);
      in.emplace_back(blocks - 1 - b, b);
    }
    const std::vector<BlockPair> same(blocks, BlockPair{0, 0});
    const auto layout = static_cast<std::uint32_t>(k);
    Row row{.size = size};
    const std::size_t moved = blocks * size;
    // The rounds interleave kvbm and ucx_perftest, so that a slow spell of the machine weighs
    // on both columns alike; each column is the median of its rounds.
    std::vector<double> put, put_ceiling, put_same, put_perftest, get, get_ceiling, get_same, get_perftest;
    for (int round = 0; round < options.repeat; ++round) {
      put.push_back(timed_gbps([&] { return agent.write(source, peer, layout, out); }, moved));
      put_ceiling.push_back(memcpy_gbps(*source, *scratch, out, size));
      put_same.push_back(timed_gbps([&] { return agent.write(source, peer, layout, same); }, moved));
      put_perftest.push_back(perftest_gbps("ucp_put_bw", options.transports, size, blocks));
      get.push_back(timed_gbps([&] { return agent.read(peer, layout, back, in); }, moved));
      get_ceiling.push_back(memcpy_gbps(*scratch, *back, in, size));
      get_same.push_back(timed_gbps([&] { return agent.read(peer, layout, back, same); }, moved));
      get_perftest.push_back(perftest_gbps("ucp_get", options.transports, size, blocks));
    }
    row.put_gbps = median(put);
    row.put_ceiling = median(put_ceiling);
    row.put_same_gbps = median(put_same);
    row.put_perftest = median(put_perftest);
    row.get_gbps = median(get);
    row.get_ceiling = median(get_ceiling);
    row.get_same_gbps = median(get_same);
    row.get_perftest = median(get_perftest);
    // Distinct blocks out, then back in (the repeated-block rounds overwrote one of them):
    // every byte must have made the round trip.
    std::memset(back->regions().front()->data(), 0xee, moved);
    (void)timed_gbps([&] { return agent.write(source, peer, layout, out); }, moved);
    (void)timed_gbps([&] { return agent.read(peer, layout, back, in); }, moved);
    row.verified = std::memcmp(source->regions().front()->data(), back->regions().front()->data(), moved) == 0;
    rows.push_back(row);
  }
  bool all_verified = true;
  for (const Row& row : rows) all_verified = all_verified && row.verified;
  if (options.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const Row& row : rows) {
      for (const auto& [op, gbps, ceiling, same, perftest] :
           {std::tuple{"put", row.put_gbps, row.put_ceiling, row.put_same_gbps, row.put_perftest},
            std::tuple{"get", row.get_gbps, row.get_ceiling, row.get_same_gbps, row.get_perftest}}) {
        out.push_back({{"remote", options.transports}, {"lanes", options.lanes}, {"op", op}, {"block_bytes", row.size}, {"bytes", options.bytes},
                       {"gbps", gbps}, {"ceiling_gbps", ceiling}, {"ratio", ceiling > 0 ? gbps / ceiling : 0.0},
                       {"repeated_block_gbps", same}, {"perftest_gbps", perftest}, {"verified", row.verified}});
      }
    }
    std::cout << out.dump(2) << '\n';
    return all_verified ? 0 : 1;
  }
  std::cout << fmt::format("kvbm bench --remote {}: RemoteAgent write (put) and read (get), one operation per block, "
                           "{} per transfer cut across {} lane(s), median of {} rounds\n",
                           options.transports, human_size(options.bytes), options.lanes, options.repeat);
  std::cout << "distinct blocks: GB/s, ceiling (one memcpy a block of the same blocks in this process), ratio; "
               "one block repeated (as ucx_perftest moves it): GB/s and ucx_perftest's, same transport and size\n";
  std::cout << fmt::format("{:>6} {:>8} {:>8} {:>6} {:>9} {:>9} {:>8} {:>8} {:>6} {:>9} {:>9} {:>8}\n", "block", "put",
                           "memcpy", "ratio", "put same", "perftest", "get", "memcpy", "ratio", "get same", "perftest",
                           "verified");
  for (const Row& row : rows) {
    std::cout << fmt::format("{:>6} {:>8.2f} {:>8.2f} {:>6.2f} {:>9.2f} {:>9.2f} {:>8.2f} {:>8.2f} {:>6.2f} {:>9.2f} {:>9.2f} {:>8}\n",
                             human_size(row.size), row.put_gbps, row.put_ceiling, row.put_gbps / row.put_ceiling,
                             row.put_same_gbps, row.put_perftest, row.get_gbps, row.get_ceiling,
                             row.get_gbps / row.get_ceiling, row.get_same_gbps, row.get_perftest, row.verified ? "yes" : "NO");
  }
  return all_verified ? 0 : 1;
}

}  // namespace kvbm::tools
