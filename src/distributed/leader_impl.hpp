#pragma once
// The leader's inner object, shared by its files: leader.cpp (construction and the public
// calls), leader_registration.cpp (handshakes, rank claims, rejections) and leader_messages.cpp
// (publishing, the reply loop, collecting answers).
#include "kvbm/distributed/leader.hpp"

#include <atomic>
#include <condition_variable>
#include <future>
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
namespace leader_detail {

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
inline constexpr std::size_t kRememberedRejections = 1024;
// While a claim is open, the registered process is pinged this often.
inline constexpr std::chrono::milliseconds kProbeInterval{200};
// A rejection is repeated this often, for this long after the rejected process last spoke.
inline constexpr std::chrono::milliseconds kRejectionInterval{250};
inline constexpr std::chrono::milliseconds kRejectionRepeat{5000};
// How often the receive loop settles claims and repeats rejections.
inline constexpr std::chrono::milliseconds kHousekeepingInterval{50};

}  // namespace leader_detail

struct Leader::Impl {
  using Clock = leader_detail::Clock;
  using RankState = leader_detail::RankState;
  struct Pending {
    std::map<int, protocol::Outcome> by_rank;
    std::vector<protocol::Outcome> plain_acks;
  };

  explicit Impl(LeaderOptions opts);

  ~Impl();

  // Queues [id, handler, frames...] for every worker; fails when it cannot within `deadline`.
  std::uint64_t publish(const std::string& handler, const std::vector<std::string>& frames, Clock::time_point deadline);

  void forget(std::uint64_t id);

  // The receive thread's own messages (rejections, liveness probes): sent only if the socket is
  // free and has room at once, else left for the next turn of the loop. The receive thread
  // must never wait on a sender, which may be waiting for workers that wait for their replies.
  // Called with `mutex` held.
  void queue_internal(const char* handler, std::string data);

  void flush_internal();

  // A rejection may be published before the worker's subscription is in place, and be lost:
  // it is sent again whenever the rejected process speaks, and every kRejectionInterval until
  // kRejectionRepeat after it last did. Called with `mutex` held.
  void reject(std::uint64_t nonce, const std::string& reason);

  // Sends the rejections due again (see reject). Called with `mutex` held.
  void repeat_rejections();

  // A process other than the registered one speaks for `rank`: probe the registered one.
  // Called with `mutex` held.
  void claim(int rank, RankState& state, std::uint64_t nonce);

  // Whether a reply from (rank, nonce) counts; `answer`: it answers a leader message (id != 0),
  // where a worker's own announcement does not. Called with `mutex` held.
  bool accept(int rank, std::uint64_t nonce, bool answer);

  // Handshake: {"rank":R,"nonce":N,"ok":true,"data":{"nonce":N,"world_size":W}}, as the answer
  // to the leader's hello (id != 0) or as a worker's announcement (id 0). Only an answer
  // registers a rank: it proves that the worker receives what the leader publishes.
  // Returns whether the reply is from a rank's registered process. Called with `mutex` held.
  bool on_hello(std::uint64_t id, const protocol::Outcome& outcome);

  void on_reply(const zmq::multipart_t& reply);

  // Settles open claims: the registered process answered since (the newcomer is an impostor),
  // or it stayed silent through the probe while the newcomer answered (its restart).
  void settle_claims();

  // A worker whose handshake failed (no keys, or keys for another leader) never registers: said
  // once per peer host.
  void report_handshake_failures();

  void receive_loop();

  void wait_for_workers(std::chrono::milliseconds timeout);

  template <typename Map>
  std::vector<int> missing_ranks(const Map& present) const {
    std::vector<int> missing;
    for (int rank = 0; rank < world_size; ++rank) {
      if (!present.contains(rank)) missing.push_back(rank);
    }
    return missing;
  }

  bool is_restarted(int rank) const;

  // Waits for every rank's answer to message `id` and builds the result.
  LeaderResult collect(std::uint64_t id, const std::string& handler, Clock::time_point deadline,
                       std::chrono::milliseconds timeout);

  LeaderResult send(const std::string& handler, const std::vector<std::string>& frames, std::chrono::milliseconds timeout);

  std::future<LeaderResult> send_async(const std::string& handler, const std::vector<std::string>& frames,
                                       std::chrono::milliseconds timeout);

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
  // Until when (steady-clock ticks) the reply loop polls instead of sleeping: a latency
  // policy's handle_wait past the latest message published (see publish()).
  std::atomic<Clock::rep> answers_awaited_until{0};
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

}  // namespace kvbm
