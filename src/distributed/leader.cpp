#include "kvbm/distributed/leader.hpp"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/cpu_affinity.hpp"
#include "common/json_input.hpp"
#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "common/poll.hpp"
#include "distributed/connection_watch.hpp"
#include "distributed/handler_data.hpp"
#include "distributed/message_receiver.hpp"
#include "distributed/socket_ends.hpp"
#include "distributed/zap_handler.hpp"

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

// A registered rank: the process (nonce) that holds it, and a newcomer claiming it, if any.
struct RankState {
  std::uint64_t nonce = 0;
  Clock::time_point last_heard{};  // the registered process's latest reply
  bool restarted = false;          // replaced since registration: its blocks are gone
  std::uint64_t claimant = 0;      // a second process's nonce, while the probe runs
  bool claimant_heard = false;     // it answered a leader message, so it receives them
  Clock::time_point claimed_at{};
  Clock::time_point probed_at{};
};

// Rejected nonces remembered, so that their later replies are refused without a new probe.
constexpr std::size_t kRememberedRejections = 1024;
// While a claim is open, the registered process is pinged this often.
constexpr std::chrono::milliseconds kProbeInterval{200};
// A rejection is repeated this often, for this long after the rejected process last spoke.
constexpr std::chrono::milliseconds kRejectionInterval{250};
constexpr std::chrono::milliseconds kRejectionRepeat{5000};
// How often the receive loop settles claims and repeats rejections.
constexpr std::chrono::milliseconds kHousekeepingInterval{50};

}  // namespace

struct Leader::Impl {
  struct Pending {
    std::map<int, protocol::Outcome> by_rank;
    std::vector<protocol::Outcome> plain_acks;
  };

  explicit Impl(LeaderOptions opts)
      : options(std::move(opts)),
        world_size(options.world_size),
        replicated(options.replicated),
        context(make_message_context(options.message_cpu)),
        publisher(context, zmq::socket_type::xpub),
        puller(context, zmq::socket_type::pull) {
    if (world_size <= 0) throw make_error(ErrorCode::InvalidArgument, "leader world size must be > 0, got {}", world_size);
    if (options.publish_hwm <= 0) {
      throw make_error(ErrorCode::InvalidArgument, "leader publish_hwm must be > 0, got {}", options.publish_hwm);
    }
    if (options.auth_key) {
      if (options.auth_peers.empty()) {
        throw make_error(ErrorCode::InvalidArgument, "a leader with a CURVE key needs the workers' public keys (auth_peers)");
      }
      zap = std::make_unique<ZapHandler>(context, options.auth_peers);  // before the server sockets bind
      make_curve_server(publisher, *options.auth_key);
      make_curve_server(puller, *options.auth_key);
    } else if (!local_endpoint(options.message_endpoint)) {
      log().warn("leader: {} is reachable from other hosts and has no CURVE keys: anyone who reaches it can drive the "
                 "workers (--auth-key, --auth-peers)", printable(options.message_endpoint, 300));
    }
    bind_leader_end(publisher, puller, options.message_endpoint, options.publish_hwm, options.max_message_bytes);
    handshakes = std::make_unique<ConnectionWatch>(context, puller, ConnectionWatch::kHandshakeFailures);
    receiver = std::thread([this] { receive_loop(); });
  }

  ~Impl() {
    stopping = true;
    receiver.join();
  }

  // Queues [id, handler, frames...] for every worker; fails when it cannot within `deadline`.
  std::uint64_t publish(const std::string& handler, const std::vector<std::string>& frames, Clock::time_point deadline) {
    std::size_t bytes = handler.size() + 8;
    for (const auto& frame : frames) bytes += frame.size();
    if (bytes > options.max_message_bytes) {
      throw make_error(ErrorCode::InvalidArgument, "{} message of {} bytes is larger than the {} allowed",
                       printable(handler), bytes, options.max_message_bytes);
    }
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
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    bool sent = false;
    try {
      publisher.set(zmq::sockopt::sndtimeo, static_cast<int>(std::clamp<std::int64_t>(wait.count(), 0, INT32_MAX)));
      sent = message.send(publisher);
    } catch (...) {
      forget(id);
      throw current_exception_as_error("leader: publishing");
    }
    if (!sent) {
      forget(id);
      throw make_error(ErrorCode::Timeout,
                       "could not publish {} message {} within {} ms: a worker's queue of {} messages is full (is it "
                       "reading?)", printable(handler), id, std::max<std::int64_t>(0, wait.count()), options.publish_hwm);
    }
    return id;
  }

  void forget(std::uint64_t id) {
    std::lock_guard lock(mutex);
    pending.erase(id);
  }

  // The receive thread's own messages (rejections, liveness probes): sent only if the socket is
  // free and has room at once, else left for the next turn of the loop. The receive thread
  // must never wait on a sender, which may be waiting for workers that wait for their replies.
  // Called with `mutex` held.
  void queue_internal(const char* handler, std::string data) {
    internal.emplace_back(handler, std::move(data));
    internal_pending.store(true, std::memory_order_release);
  }

  void flush_internal() {
    if (!internal_pending.load(std::memory_order_acquire)) return;
    std::unique_lock send_lock(send_mutex, std::try_to_lock);
    if (!send_lock.owns_lock()) return;
    std::deque<std::pair<std::string, std::string>> todo;
    {
      std::lock_guard lock(mutex);
      todo.swap(internal);
    }
    while (!todo.empty()) {
      zmq::multipart_t message;
      message.addstr(protocol::encode_id(next_id++));
      message.addstr(todo.front().first);
      if (!todo.front().second.empty()) message.addstr(todo.front().second);
      bool sent = false;
      try {
        sent = message.send(publisher, ZMQ_DONTWAIT);
      } catch (...) {
        log().warn("leader: {}", current_exception_as_error("sending a control message").message());
      }
      if (!sent) break;
      todo.pop_front();
    }
    std::lock_guard lock(mutex);
    internal.insert(internal.begin(), todo.begin(), todo.end());
    internal_pending.store(!internal.empty(), std::memory_order_release);
  }

  // Called with `mutex` held.
  // A rejection may be published before the worker's subscription is in place, and be lost:
  // it is sent again whenever the rejected process speaks, and every kRejectionInterval until
  // kRejectionRepeat after it last did. Called with `mutex` held.
  void reject(std::uint64_t nonce, const std::string& reason) {
    const auto now = Clock::now();
    auto [it, inserted] = rejected.emplace(nonce, Rejection{reason, now, now});
    if (inserted) {
      log().warn("leader: rejecting a worker: {}", reason);
      rejected_order.push_back(nonce);
      if (rejected_order.size() > kRememberedRejections) {
        rejected.erase(rejected_order.front());
        rejected_order.pop_front();
      }
    }
    it->second.last_heard = now;
    it->second.last_sent = now;
    queue_internal(protocol::kReject, handler_data::encode_reject({nonce, it->second.reason}));
  }

  // Sends the rejections due again (see reject). Called with `mutex` held.
  void repeat_rejections() {
    const auto now = Clock::now();
    for (auto& [nonce, rejection] : rejected) {
      if (now - rejection.last_heard > kRejectionRepeat || now - rejection.last_sent < kRejectionInterval) continue;
      rejection.last_sent = now;
      queue_internal(protocol::kReject, handler_data::encode_reject({nonce, rejection.reason}));
    }
  }

  // A process other than the registered one speaks for `rank`: probe the registered one.
  // Called with `mutex` held.
  void claim(int rank, RankState& state, std::uint64_t nonce) {
    if (state.claimant == nonce) return;
    if (state.claimant != 0) {
      reject(nonce, fmt::format("rank {} is already claimed by another worker", rank));
      return;
    }
    log().warn("leader: a second process claims rank {}; checking whether the registered one still answers", rank);
    state.claimant = nonce;
    state.claimed_at = Clock::now();
    state.probed_at = state.claimed_at;
    queue_internal(protocol::kPing, std::string());
  }

  // Whether a reply from (rank, nonce) counts; `answer`: it answers a leader message (id != 0),
  // where a worker's own announcement does not. Called with `mutex` held.
  bool accept(int rank, std::uint64_t nonce, bool answer) {
    if (nonce == 0) return false;  // no process named
    if (const auto it = rejected.find(nonce); it != rejected.end()) {
      reject(nonce, it->second.reason);
      return false;
    }
    if (rank < 0 || rank >= world_size) {
      reject(nonce, fmt::format("rank {} is outside [0, {})", rank, world_size));
      return false;
    }
    const auto it = ranks.find(rank);
    if (it == ranks.end()) return false;  // not registered: a hello registers it
    if (it->second.nonce == nonce) {
      it->second.last_heard = Clock::now();
      return true;
    }
    claim(rank, it->second, nonce);
    if (it->second.claimant == nonce && answer) it->second.claimant_heard = true;
    return false;
  }

  // Handshake: {"rank":R,"nonce":N,"ok":true,"data":{"nonce":N,"world_size":W}}, as the answer
  // to the leader's hello (id != 0) or as a worker's announcement (id 0). Only an answer
  // registers a rank: it proves that the worker receives what the leader publishes.
  // Returns whether the reply is from a rank's registered process. Called with `mutex` held.
  bool on_hello(std::uint64_t id, const protocol::Outcome& outcome) {
    const protocol::Hello hello = protocol::decode_hello(outcome.data);
    if (hello.nonce == 0) throw make_error(ErrorCode::InvalidArgument, "hello from rank {} names no nonce", outcome.rank);
    const bool answer = id != 0;
    if (outcome.rank < 0 || outcome.rank >= world_size) {
      reject(hello.nonce, fmt::format("rank {} is outside [0, {})", outcome.rank, world_size));
    } else if (hello.world_size != world_size) {
      reject(hello.nonce, fmt::format("worker says world size {}, leader has {}", hello.world_size, world_size));
    } else if (hello.replicated != replicated) {
      reject(hello.nonce, fmt::format("rank {} runs in {} mode, the leader in {} mode", outcome.rank,
                                      hello.replicated ? "replicated" : "sharded", replicated ? "replicated" : "sharded"));
    } else if (ranks.contains(outcome.rank) || rejected.contains(hello.nonce)) {
      return accept(outcome.rank, hello.nonce, answer);
    } else if (answer) {
      ranks[outcome.rank] = RankState{.nonce = hello.nonce, .last_heard = Clock::now()};
      log().info("leader: rank {} registered", outcome.rank);
      changed.notify_all();
      return true;
    }
    return false;
  }

  void on_reply(const zmq::multipart_t& reply) {
    if (reply.empty()) return;
    const std::uint64_t id = protocol::decode_id(reply[0].to_string());
    if (reply.size() < 3) {  // Dynamo's plain [id] ack: success, rank unknown
      std::lock_guard lock(mutex);
      if (auto it = pending.find(id); it != pending.end()) it->second.plain_acks.push_back({});
      changed.notify_all();
      return;
    }
    protocol::Outcome outcome = protocol::decode_outcome({reply[2].data<char>(), reply[2].size()});
    const bool hello = reply[1].to_string() == protocol::kHello;
    std::lock_guard lock(mutex);
    if (!(hello ? on_hello(id, outcome) : accept(outcome.rank, outcome.nonce, id != 0))) return;
    auto it = pending.find(id);
    if (it == pending.end()) return;  // a late reply to a request that timed out, or a probe's
    it->second.by_rank[outcome.rank] = std::move(outcome);
    changed.notify_all();
  }

  // Settles open claims: the registered process answered since (the newcomer is an impostor),
  // or it stayed silent through the probe while the newcomer answered (its restart).
  void settle_claims() {
    std::lock_guard lock(mutex);
    const auto now = Clock::now();
    for (auto& [rank, state] : ranks) {
      if (state.claimant == 0) continue;
      if (state.last_heard > state.claimed_at) {
        reject(state.claimant, fmt::format("rank {} is already taken by another worker", rank));
        state.claimant = 0;
      } else if (now - state.claimed_at >= options.liveness_probe && state.claimant_heard) {
        log().error("leader: rank {} restarted (its process did not answer for {} ms); its blocks are gone", rank,
                    options.liveness_probe.count());
        state = RankState{.nonce = state.claimant, .last_heard = now, .restarted = true};
        changed.notify_all();
      } else if (now - state.probed_at >= kProbeInterval) {
        state.probed_at = now;
        queue_internal(protocol::kPing, std::string());
      }
    }
  }

  // A worker whose handshake failed (no keys, or keys for another leader) never registers: said
  // once per peer host.
  void report_handshake_failures() {
    for (const SocketEvent& event : handshakes->take()) {
      if (event.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) continue;  // the ZapHandler said why, with the key
      const std::string host = event.address.substr(0, event.address.rfind(':'));
      if (reported_handshakes.insert(host).second) {
        log().warn("leader: a worker could not connect: {}", describe_handshake_failure(event));
      }
    }
  }

  void receive_loop() {
    std::optional<ScopedThreadCpu> on_message_cpu;
    try {
      on_message_cpu.emplace(options.message_cpu);
    } catch (const Error& error) {  // checked when the context was made: the CPU went away since
      log().warn("leader: reply loop stays unpinned: {}", error.message());
    }
    MessageReceiver replies(puller, spin_budgets(options.latency).message);
    auto next_housekeeping = Clock::now();
    while (!stopping.load()) {
      try {
        if (auto reply = replies.next(std::chrono::milliseconds(50))) {
          on_reply(*reply);
          bump(replies_seen);  // after on_reply has let go of the lock: see poll_for
        }
      } catch (...) {
        // Nothing a worker sends may end the leader: the reply is dropped with a word.
        log().warn("leader: dropped a reply: {}", current_exception_as_error("leader: reply").message());
      }
      // Claims and repeated rejections are timed in hundreds of milliseconds: a reply's path
      // does not pay for them, and the control messages go out as soon as they are queued.
      try {
        if (const auto now = Clock::now(); now >= next_housekeeping) {
          next_housekeeping = now + kHousekeepingInterval;
          settle_claims();
          std::lock_guard lock(mutex);
          repeat_rejections();
        }
        flush_internal();
        report_handshake_failures();
      } catch (...) {
        log().warn("leader: {}", current_exception_as_error("leader: housekeeping").message());
      }
    }
  }

  void wait_for_workers(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      forget(publish(protocol::kHello, {}, deadline));
      std::unique_lock lock(mutex);
      if (changed.wait_for(lock, std::chrono::milliseconds(100), [&] { return ranks.size() == std::size_t(world_size); })) {
        break;
      }
      if (Clock::now() >= deadline) {
        throw make_error(ErrorCode::Timeout, "workers did not all register within {} ms; missing ranks: {}",
                         timeout.count(), fmt::join(missing_ranks(ranks), ", "));
      }
    }
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

  bool is_restarted(int rank) const {
    const auto it = ranks.find(rank);
    return it != ranks.end() && it->second.restarted;
  }

  // Waits for every rank's answer to message `id` and builds the result.
  LeaderResult collect(std::uint64_t id, const std::string& handler, Clock::time_point deadline,
                       std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    Pending& entry = pending.at(id);
    const auto answered = [&] {
      std::size_t count = entry.plain_acks.size();
      for (int rank = 0; rank < world_size; ++rank) count += entry.by_rank.contains(rank) || is_restarted(rank);
      return count >= std::size_t(world_size);
    };
    // A round trip on loopback takes about 100 us: poll for up to kSpin before sleeping.
    const auto left = std::max<Clock::duration>(Clock::duration::zero(), deadline - Clock::now());
    const bool all = poll_for(lock, std::min<std::chrono::nanoseconds>(kSpin, left), replies_seen, answered) ||
                     changed.wait_until(lock, deadline, answered);
    LeaderResult result;
    std::vector<std::string> failures;
    std::optional<ErrorCode> first_code;
    bool any_restarted = false;
    std::set<int> heard;
    for (int rank = 0; rank < world_size; ++rank) {
      auto it = entry.by_rank.find(rank);
      if (is_restarted(rank)) {
        any_restarted = true;
        heard.insert(rank);
        result.outcomes.push_back({rank, ranks.at(rank).nonce,
                                   make_error(ErrorCode::Restarted, "rank {} restarted; its blocks are gone", rank), {}});
      } else if (it != entry.by_rank.end()) {
        heard.insert(rank);
        result.outcomes.push_back(it->second);
      } else {
        continue;
      }
      const Status& status = result.outcomes.back().status;
      if (!status.ok()) {
        failures.push_back(fmt::format("rank {}: {}", rank, status.error().message()));
        if (!first_code) first_code = status.error().code();
      }
    }
    for (auto& ack : entry.plain_acks) result.outcomes.push_back(ack);
    if (!all) {
      failures.push_back(fmt::format("no answer within {} ms from rank(s) {}", timeout.count(),
                                     fmt::join(missing_ranks(heard), ", ")));
    }
    pending.erase(id);
    if (!failures.empty()) {
      const bool cancelled = std::all_of(result.outcomes.begin(), result.outcomes.end(), [](const auto& outcome) {
        return outcome.status.ok() || outcome.status.error().code() == ErrorCode::Cancelled;
      });
      // A missing rank outweighs a restart, a restart any one rank's error; otherwise the code
      // of the lowest failing rank (all Cancelled: Cancelled).
      const ErrorCode code = !all ? ErrorCode::Timeout
                             : any_restarted ? ErrorCode::Restarted
                             : cancelled ? ErrorCode::Cancelled
                                         : first_code.value_or(ErrorCode::Internal);
      result.status = make_error(code, "{} message {} failed: {}", printable(handler), id, fmt::join(failures, "; "));
    }
    return result;
  }

  LeaderResult send(const std::string& handler, const std::vector<std::string>& frames, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::uint64_t id = 0;
    try {
      id = publish(handler, frames, deadline);
    } catch (const Error& error) {
      return {error, {}};
    }
    return collect(id, handler, deadline, timeout);
  }

  std::future<LeaderResult> send_async(const std::string& handler, const std::vector<std::string>& frames,
                                       std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::uint64_t id = 0;
    try {
      id = publish(handler, frames, deadline);
    } catch (const Error& error) {
      std::promise<LeaderResult> failed;
      failed.set_value({error, {}});
      return failed.get_future();
    }
    return std::async(std::launch::deferred,
                      [this, id, handler, deadline, timeout] { return collect(id, handler, deadline, timeout); });
  }

  static constexpr std::chrono::microseconds kSpin{200};
  LeaderOptions options;
  int world_size;
  bool replicated;
  zmq::context_t context;
  zmq::socket_t publisher;
  std::unique_ptr<ZapHandler> zap;  // with CURVE keys: which workers may connect
  zmq::socket_t puller;
  std::unique_ptr<ConnectionWatch> handshakes;  // of `puller`, watched by the reply loop
  std::set<std::string> reported_handshakes;
  std::mutex send_mutex;  // the publisher and next_id
  std::uint64_t next_id = 1;
  mutable std::mutex mutex;  // everything below but the atomics
  std::condition_variable changed;
  std::atomic<std::uint64_t> replies_seen{0};  // bumped after each reply, for collect()'s poll
  std::map<std::uint64_t, Pending> pending;
  std::map<int, RankState> ranks;
  struct Rejection {
    std::string reason;
    Clock::time_point last_heard;  // the rejected process's latest message
    Clock::time_point last_sent;
  };
  std::map<std::uint64_t, Rejection> rejected;  // by nonce
  std::deque<std::uint64_t> rejected_order;
  std::deque<std::pair<std::string, std::string>> internal;  // (handler, data) for flush_internal
  std::atomic<bool> internal_pending{false};                 // internal is not empty
  std::mutex finished_mutex;
  FinishedRequests finished;
  std::atomic<bool> stopping{false};
  std::thread receiver;
};

Leader::Leader(LeaderOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Leader::Leader(std::string message_endpoint, int world_size, std::optional<int> message_cpu)
    : Leader(LeaderOptions{.message_endpoint = std::move(message_endpoint), .world_size = world_size,
                           .message_cpu = message_cpu}) {}

Leader::~Leader() = default;

void Leader::wait_for_workers(std::chrono::milliseconds timeout) {
  impl_->wait_for_workers(timeout);
  if (impl_->replicated) init_replicated(timeout);
}

void Leader::init_replicated(std::chrono::milliseconds timeout) {
  const LeaderResult id = send(protocol::kNcclId, {}, timeout);
  id.status.throw_if_error();
  std::string nccl_id;
  for (const auto& outcome : id.outcomes) {
    if (outcome.rank == 0 && !outcome.data.empty()) {
      nccl_id = json_input::required_string(json_input::parse_object(outcome.data, "rank 0's NCCL id"), "nccl_id",
                                            "rank 0's NCCL id", 1024);
    }
  }
  if (nccl_id.empty()) throw make_error(ErrorCode::Internal, "rank 0 sent no NCCL id");
  const LeaderResult joined = send(protocol::kNcclInit, {json_input::dump({{"nccl_id", nccl_id}})}, timeout);
  joined.status.throw_if_error();
  log().info("leader: every rank joined a new NCCL communicator");
}

LeaderResult Leader::send(const std::string& handler, const std::vector<std::string>& frames,
                          std::chrono::milliseconds timeout) {
  return impl_->send(handler, frames, timeout);
}

std::future<LeaderResult> Leader::send_async(const std::string& handler, const std::vector<std::string>& frames,
                                             std::chrono::milliseconds timeout) {
  return impl_->send_async(handler, frames, timeout);
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
  return send(protocol::kCancel, {json_input::dump({{"uuid", uuid}})}, timeout);
}

std::vector<int> Leader::restarted_ranks() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<int> restarted;
  for (const auto& [rank, state] : impl_->ranks) {
    if (state.restarted) restarted.push_back(rank);
  }
  return restarted;
}

void Leader::acknowledge_restart(int rank) {
  std::lock_guard lock(impl_->mutex);
  const auto it = impl_->ranks.find(rank);
  if (it == impl_->ranks.end() || !it->second.restarted) {
    throw make_error(ErrorCode::InvalidArgument, "rank {} has not restarted", rank);
  }
  it->second.restarted = false;
}

FinishedRequests Leader::get_finished() {
  std::lock_guard lock(impl_->finished_mutex);
  return std::exchange(impl_->finished, {});
}

int Leader::world_size() const { return impl_->world_size; }

}  // namespace kvbm
