// The leader's side of registration: hellos answered by workers register their ranks; a second
// process claiming a registered rank is probed and either rejected or taken as the rank's restart;
// rejections are repeated until heard; failed CURVE handshakes are reported once per host.
#include "distributed/leader_impl.hpp"

namespace kvbm {

using namespace leader_detail;

void Leader::Impl::reject(std::uint64_t nonce, const std::string& reason) {
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

void Leader::Impl::repeat_rejections() {
  const auto now = Clock::now();
  for (auto& [nonce, rejection] : rejected) {
    if (now - rejection.last_heard > kRejectionRepeat || now - rejection.last_sent < kRejectionInterval) continue;
    rejection.last_sent = now;
    queue_internal(protocol::kReject, handler_data::encode_reject({nonce, rejection.reason}));
  }
}

void Leader::Impl::claim(int rank, RankState& state, std::uint64_t nonce) {
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

bool Leader::Impl::accept(int rank, std::uint64_t nonce, bool answer) {
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

bool Leader::Impl::on_hello(std::uint64_t id, const protocol::Outcome& outcome) {
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

void Leader::Impl::settle_claims() {
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

void Leader::Impl::report_handshake_failures() {
  for (const SocketEvent& event : handshakes->take()) {
    if (event.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) continue;  // the ZapHandler said why, with the key
    const std::string host = event.address.substr(0, event.address.rfind(':'));
    if (reported_handshakes.insert(host).second) {
      log().warn("leader: a worker could not connect: {}", describe_handshake_failure(event));
    }
  }
}

void Leader::Impl::wait_for_workers(std::chrono::milliseconds timeout) {
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

bool Leader::Impl::is_restarted(int rank) const {
  const auto it = ranks.find(rank);
  return it != ranks.end() && it->second.restarted;
}

}  // namespace kvbm
