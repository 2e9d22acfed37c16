#pragma once
// One knob for how kvbm's waiting threads trade CPU for latency. A thread that sleeps on a
// condition or a file descriptor costs 30-140 us to wake on a VM, which is longer than a small
// transfer or a control message takes; a thread that polls first answers at once but burns its
// core meanwhile. Every place that polls (transfer handles, CUDA completion threads, message
// threads) takes its budget from the policy, so a user chooses once.
#include <chrono>
#include <optional>
#include <string_view>

namespace kvbm {

enum class LatencyPolicy {
  Low,       // poll generously: the lowest latency, a busy core per waiting thread while it waits
  Balanced,  // poll about a tenth as long: most small operations still end within the poll
  LowCpu,    // never poll: every wait sleeps at once
};

// How long each kind of waiting thread polls before it sleeps.
struct SpinBudgets {
  std::chrono::microseconds handle_wait;    // TransferHandle::wait, yielding between looks; a leader's
                                            // reply loop after each message it sends
  std::chrono::microseconds cuda_event;     // a CUDA completion thread on a finished-soon event
  std::chrono::microseconds cuda_progress;  // the same, watching the GPU-written progress word
  std::chrono::microseconds cuda_idle;      // a CUDA completion thread waiting for work
  std::chrono::microseconds message;        // a leader's or worker's message thread after each message
};

[[nodiscard]] SpinBudgets spin_budgets(LatencyPolicy policy) noexcept;
[[nodiscard]] std::string_view to_string(LatencyPolicy policy) noexcept;
// "low", "balanced" or "low_cpu"; nullopt for anything else.
[[nodiscard]] std::optional<LatencyPolicy> parse_latency_policy(std::string_view name) noexcept;

}  // namespace kvbm
