// The leader's messages: publishing [id, handler, frames...] to every worker, its own internal
// messages, the reply loop, and collecting every rank's answer into one result.
#include "distributed/leader_impl.hpp"

namespace kvbm {

using namespace leader_detail;

std::uint64_t Leader::Impl::publish(const std::string& handler, const std::vector<std::string>& frames,
                                   Clock::time_point deadline) {
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
  // The answers are awaited: the reply loop polls for them as a TransferHandle's wait polls for
  // its transfer. Asleep through a transfer of milliseconds, it would pay a wake-up from a
  // halted virtual CPU when the answer came (a one-request leg of kvbm_worker_bench spent
  // 0.45-0.5 ms outside the worker's engine: see bench/results/h100-2026-12-08-check-and-worker-leg).
  // Publishers take turns under send_mutex, so each store is later than the one before.
  answers_awaited_until.store((Clock::now() + spin_budgets(options.latency).handle_wait).time_since_epoch().count(),
                              std::memory_order_relaxed);
  return id;
}

void Leader::Impl::forget(std::uint64_t id) {
  std::lock_guard lock(mutex);
  pending.erase(id);
}

void Leader::Impl::queue_internal(const char* handler, std::string data) {
  internal.emplace_back(handler, std::move(data));
  internal_pending.store(true, std::memory_order_release);
}

void Leader::Impl::flush_internal() {
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

void Leader::Impl::on_reply(const zmq::multipart_t& reply) {
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

void Leader::Impl::receive_loop() {
  std::optional<ScopedThreadCpu> on_message_cpu;
  try {
    on_message_cpu.emplace(options.message_cpu);
  } catch (const Error& error) {  // checked when the context was made: the CPU went away since
    log().warn("leader: reply loop stays unpinned: {}", error.message());
  }
  MessageReceiver replies(puller, spin_budgets(options.latency).message, &answers_awaited_until);
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

LeaderResult Leader::Impl::collect(std::uint64_t id, const std::string& handler, Clock::time_point deadline,
                     std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex);
  Pending& entry = pending.at(id);
  const auto answered = [&] {
    std::size_t count = entry.plain_acks.size();
    for (int rank = 0; rank < world_size; ++rank) count += entry.by_rank.contains(rank) || is_restarted(rank);
    return count >= std::size_t(world_size);
  };
  // A round trip on loopback takes about 100 us: poll for up to kSpin before sleeping. Not for
  // as long as the reply loop polls: the vLLM connector waits for several transfers at once, on
  // threads of its own, and each would keep a core busy for its whole transfer.
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

LeaderResult Leader::Impl::send(const std::string& handler, const std::vector<std::string>& frames,
                                std::chrono::milliseconds timeout) {
  return send_async(handler, frames, timeout).get();  // deferred: collects here, on this thread
}

std::future<LeaderResult> Leader::Impl::send_async(const std::string& handler, const std::vector<std::string>& frames,
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

}  // namespace kvbm
