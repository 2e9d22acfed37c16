#include "kvbm/distributed/leader.hpp"

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/cpu_affinity.hpp"
#include "common/poll.hpp"
#include "distributed/message_receiver.hpp"
#include "distributed/socket_ends.hpp"
#include "kvbm/common/settings.hpp"
#include "kvbm/common/log.hpp"

namespace kvbm {

struct Leader::Impl {
  struct Pending {
    std::map<int, protocol::Outcome> by_rank;
    std::vector<protocol::Outcome> plain_acks;
  };

  Impl(std::string endpoint, int world, std::optional<int> cpu)
      : world_size(world),
        message_spin(settings::message_spin_us()),
        message_cpu(cpu),
        context(make_message_context(cpu)),
        publisher(context, zmq::socket_type::pub),
        puller(context, zmq::socket_type::pull) {
    if (world_size <= 0) throw make_error(ErrorCode::InvalidArgument, "leader world size must be > 0, got {}", world_size);
    try {
      bind_leader_end(publisher, puller, endpoint);
    } catch (const zmq::error_t& error) {
      throw make_error(ErrorCode::Io, "leader cannot bind '{}' / '{}': {}", endpoint, protocol::reply_endpoint(endpoint),
                       error.what());
    }
    receiver = std::thread([this] { receive_loop(); });
  }

  ~Impl() {
    stopping = true;
    receiver.join();
  }

  std::uint64_t publish(const std::string& handler, const std::vector<std::string>& frames) {
    std::lock_guard lock(send_mutex);
    const std::uint64_t id = next_id++;
    {
      std::lock_guard pending_lock(mutex);
      pending.emplace(id, Pending{});
    }
    zmq::multipart_t message;
    message.addstr(protocol::encode_id(id));
    message.addstr(handler);
    for (const auto& frame : frames) message.addstr(frame);
    message.send(publisher);
    return id;
  }

  void on_reply(zmq::multipart_t& reply) {
    std::uint64_t id = 0;
    try {
      if (reply.empty()) return;
      id = protocol::decode_id(reply[0].to_string());
    } catch (const Error& error) {
      log().warn("leader: dropped a reply: {}", error.message());
      return;
    }
    std::lock_guard lock(mutex);
    if (reply.size() >= 3 && reply[1].to_string() == protocol::kHello) {
      on_hello(id, reply[2].to_string());
      return;
    }
    auto it = pending.find(id);
    if (it == pending.end()) return;  // a late reply to a request that timed out
    if (reply.size() < 3) {
      it->second.plain_acks.push_back({});  // Dynamo's plain [id] ack: success, rank unknown
    } else {
      try {
        protocol::Outcome outcome = protocol::decode_outcome(reply[2].to_string());
        if (outcome.rank < 0 || outcome.rank >= world_size) return;
        it->second.by_rank[outcome.rank] = std::move(outcome);
      } catch (const Error& error) {
        log().warn("leader: reply to message {}: {}", id, error.message());
        return;
      }
    }
    changed.notify_all();
  }

  // Handshake replies: {"rank":R,"ok":true,"data":{"nonce":N,"world_size":W}}.
  void on_hello(std::uint64_t, const std::string& payload) {
    protocol::Outcome outcome;
    try {
      outcome = protocol::decode_outcome(payload);
    } catch (const Error&) {
      return;
    }
    const std::uint64_t nonce = outcome.data.value("nonce", std::uint64_t{0});
    std::string reason;
    if (outcome.rank < 0 || outcome.rank >= world_size) {
      reason = fmt::format("rank {} is outside [0, {})", outcome.rank, world_size);
    } else if (outcome.data.value("world_size", 0) != world_size) {
      reason = fmt::format("worker says world size {}, leader has {}", outcome.data.value("world_size", 0), world_size);
    } else {
      auto [it, inserted] = registered.emplace(outcome.rank, nonce);
      if (!inserted && it->second != nonce) reason = fmt::format("rank {} is already taken by another worker", outcome.rank);
    }
    if (!reason.empty()) {
      log().warn("leader: rejecting a worker: {}", reason);
      rejections.emplace_back(nonce, reason);
    }
    changed.notify_all();
  }

  void receive_loop() {
    std::optional<ScopedThreadCpu> on_message_cpu;
    try {
      on_message_cpu.emplace(message_cpu);
    } catch (const Error& error) {  // checked when the context was made: the CPU went away since
      log().warn("leader: reply loop stays unpinned: {}", error.message());
    }
    MessageReceiver replies(puller, message_spin);
    while (!stopping.load()) {
      if (auto reply = replies.next(std::chrono::milliseconds(50))) {
        on_reply(*reply);
        bump(replies_seen);  // after on_reply has let go of the lock: see poll_for
      }
    }
  }

  void send_rejections() {
    std::vector<std::pair<std::uint64_t, std::string>> todo;
    {
      std::lock_guard lock(mutex);
      todo.swap(rejections);
    }
    for (const auto& [nonce, reason] : todo) {
      const std::uint64_t id = publish(protocol::kReject, {nlohmann::json{{"nonce", nonce}, {"reason", reason}}.dump()});
      std::lock_guard lock(mutex);
      pending.erase(id);
    }
  }

  void wait_for_workers(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const std::uint64_t id = publish(protocol::kHello, {});
      {
        std::unique_lock lock(mutex);
        pending.erase(id);
        changed.wait_for(lock, std::chrono::milliseconds(100), [&] { return registered.size() == std::size_t(world_size); });
        if (registered.size() == std::size_t(world_size)) break;
      }
      send_rejections();
      if (std::chrono::steady_clock::now() >= deadline) {
        std::lock_guard lock(mutex);
        throw make_error(ErrorCode::Timeout, "workers did not all register within {} ms; missing ranks: {}",
                         timeout.count(), fmt::join(missing_ranks(registered), ", "));
      }
    }
    send_rejections();
    log().info("leader: all {} ranks registered", world_size);
  }

  template <typename Map>
  std::vector<int> missing_ranks(const Map& present) const {
    std::vector<int> missing;
    for (int rank = 0; rank < world_size; ++rank) {
      if (!present.contains(rank)) missing.push_back(rank);
    }
    return missing;
  }

  LeaderResult send(const std::string& handler, const std::vector<std::string>& frames, std::chrono::milliseconds timeout) {
    const std::uint64_t id = publish(handler, frames);
    std::unique_lock lock(mutex);
    Pending& entry = pending.at(id);
    const auto answered = [&] { return entry.by_rank.size() + entry.plain_acks.size() >= std::size_t(world_size); };
    // A round trip on loopback takes about 100 us: poll for up to kSpin before sleeping.
    const bool all = poll_for(lock, std::min<std::chrono::nanoseconds>(kSpin, timeout), replies_seen, answered) ||
                     changed.wait_for(lock, timeout, answered);
    LeaderResult result;
    std::vector<std::string> failures;
    for (auto& [rank, outcome] : entry.by_rank) {
      if (!outcome.status.ok()) failures.push_back(fmt::format("rank {}: {}", rank, outcome.status.error().message()));
      result.outcomes.push_back(outcome);
    }
    for (auto& ack : entry.plain_acks) result.outcomes.push_back(ack);
    if (!all) {
      failures.push_back(fmt::format("no answer within {} ms from rank(s) {}", timeout.count(),
                                     fmt::join(missing_ranks(entry.by_rank), ", ")));
    }
    pending.erase(id);
    if (!failures.empty()) {
      const bool cancelled = all && std::all_of(result.outcomes.begin(), result.outcomes.end(), [](const auto& outcome) {
        return outcome.status.ok() || outcome.status.error().code() == ErrorCode::Cancelled;
      });
      const ErrorCode code = !all ? ErrorCode::Timeout : cancelled ? ErrorCode::Cancelled : ErrorCode::InvalidArgument;
      result.status = make_error(code, "{} message {} failed: {}", handler, id, fmt::join(failures, "; "));
    }
    return result;
  }

  static constexpr std::chrono::microseconds kSpin{200};
  int world_size;
  std::chrono::microseconds message_spin;
  std::optional<int> message_cpu;
  zmq::context_t context;
  zmq::socket_t publisher;
  zmq::socket_t puller;
  std::mutex send_mutex;
  std::uint64_t next_id = 1;
  std::mutex mutex;
  std::condition_variable changed;
  std::atomic<std::uint64_t> replies_seen{0};  // bumped after each reply, for send()'s poll
  std::map<std::uint64_t, Pending> pending;
  std::map<int, std::uint64_t> registered;  // rank -> worker nonce
  std::vector<std::pair<std::uint64_t, std::string>> rejections;
  std::mutex finished_mutex;
  FinishedRequests finished;
  std::atomic<bool> stopping{false};
  std::thread receiver;
};

Leader::Leader(std::string message_endpoint, int world_size, std::optional<int> message_cpu)
    : impl_(std::make_unique<Impl>(std::move(message_endpoint), world_size, message_cpu)) {}

Leader::~Leader() = default;

void Leader::wait_for_workers(std::chrono::milliseconds timeout) { impl_->wait_for_workers(timeout); }

LeaderResult Leader::send(const std::string& handler, const std::vector<std::string>& frames,
                          std::chrono::milliseconds timeout) {
  return impl_->send(handler, frames, timeout);
}

LeaderResult Leader::transfer(const BlockTransferRequest& request, std::chrono::milliseconds timeout) {
  LeaderResult result = send(protocol::kTransferHandler, {encode_request(request)}, timeout);
  if (result.status.ok() && request.connector_req) {
    std::lock_guard lock(impl_->finished_mutex);
    auto& list = request.to_pool == BlockTransferPool::Device ? impl_->finished.loading : impl_->finished.saving;
    list.push_back(request.connector_req->request_id);
  }
  return result;
}

LeaderResult Leader::cancel(const std::string& uuid, std::chrono::milliseconds timeout) {
  return send(protocol::kCancel, {nlohmann::json{{"uuid", uuid}}.dump()}, timeout);
}

FinishedRequests Leader::get_finished() {
  std::lock_guard lock(impl_->finished_mutex);
  return std::exchange(impl_->finished, {});
}

int Leader::world_size() const { return impl_->world_size; }

}  // namespace kvbm
