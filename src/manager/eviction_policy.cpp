#include "kvbm/manager/eviction_policy.hpp"

namespace kvbm {

std::string_view to_string(EvictionPolicyKind kind) noexcept {
  return kind == EvictionPolicyKind::Frequency ? "frequency" : "lru";
}

std::optional<EvictionPolicyKind> parse_eviction_policy(std::string_view name) noexcept {
  if (name == "lru") return EvictionPolicyKind::Lru;
  if (name == "frequency") return EvictionPolicyKind::Frequency;
  return std::nullopt;
}

std::unique_ptr<EvictionPolicy> make_eviction_policy(EvictionPolicyKind kind) {
  return kind == EvictionPolicyKind::Frequency ? make_frequency_policy() : make_lru_policy();
}

}  // namespace kvbm
