#include "kvbm/manager/eviction_policy.hpp"

#include <array>
#include <string>

namespace kvbm {
namespace {

constexpr std::array<std::pair<EvictionPolicyKind, std::string_view>, 6> kNames = {{
    {EvictionPolicyKind::Lru, "lru"},
    {EvictionPolicyKind::Frequency, "frequency"},
    {EvictionPolicyKind::Prefix, "prefix"},
    {EvictionPolicyKind::TinyLfu, "tinylfu"},
    {EvictionPolicyKind::S3Fifo, "s3fifo"},
    {EvictionPolicyKind::PrefixFrequency, "prefix-frequency"},
}};

}  // namespace

std::string_view to_string(EvictionPolicyKind kind) noexcept {
  for (const auto& [each, name] : kNames) {
    if (each == kind) return name;
  }
  return "lru";
}

std::optional<EvictionPolicyKind> parse_eviction_policy(std::string_view name) noexcept {
  for (const auto& [kind, each] : kNames) {
    if (each == name) return kind;
  }
  return std::nullopt;
}

std::vector<EvictionPolicyKind> all_eviction_policies() {
  std::vector<EvictionPolicyKind> kinds;
  for (const auto& [kind, name] : kNames) kinds.push_back(kind);
  return kinds;
}

std::string eviction_policy_names() {
  std::string names;
  for (const auto& [kind, name] : kNames) names += (names.empty() ? "" : ", ") + std::string(name);
  return names;
}

std::unique_ptr<EvictionPolicy> make_eviction_policy(EvictionPolicyKind kind, std::size_t capacity) {
  switch (kind) {
    case EvictionPolicyKind::Lru: return make_lru_policy();
    case EvictionPolicyKind::Frequency: return make_frequency_policy();
    case EvictionPolicyKind::Prefix: return make_prefix_policy();
    case EvictionPolicyKind::TinyLfu: return make_tinylfu_policy(capacity);
    case EvictionPolicyKind::S3Fifo: return make_s3fifo_policy(capacity);
    case EvictionPolicyKind::PrefixFrequency: return make_prefix_frequency_policy();
  }
  return make_lru_policy();
}

std::unique_ptr<EvictionPolicy> make_tier_policy(EvictionPolicyKind kind, std::size_t capacity, bool top) {
  if (kind == EvictionPolicyKind::PrefixFrequency && !top) return make_prefix_policy();
  return make_eviction_policy(kind, capacity);
}

}  // namespace kvbm
