#include "kvbm/common/latency.hpp"

namespace kvbm {

using std::chrono::microseconds;

SpinBudgets spin_budgets(LatencyPolicy policy) noexcept {
  switch (policy) {
    case LatencyPolicy::Low:
      return {.handle_wait = microseconds(10000), .cuda_event = microseconds(100), .cuda_progress = microseconds(10000),
              .cuda_idle = microseconds(1000), .message = microseconds(500)};
    case LatencyPolicy::Balanced:
      return {.handle_wait = microseconds(1000), .cuda_event = microseconds(20), .cuda_progress = microseconds(1000),
              .cuda_idle = microseconds(100), .message = microseconds(50)};
    case LatencyPolicy::LowCpu: break;
  }
  return {microseconds(0), microseconds(0), microseconds(0), microseconds(0), microseconds(0)};
}

std::string_view to_string(LatencyPolicy policy) noexcept {
  switch (policy) {
    case LatencyPolicy::Low: return "low";
    case LatencyPolicy::Balanced: return "balanced";
    case LatencyPolicy::LowCpu: return "low_cpu";
  }
  return "low";
}

std::optional<LatencyPolicy> parse_latency_policy(std::string_view name) noexcept {
  for (LatencyPolicy policy : {LatencyPolicy::Low, LatencyPolicy::Balanced, LatencyPolicy::LowCpu}) {
    if (to_string(policy) == name) return policy;
  }
  return std::nullopt;
}

}  // namespace kvbm
