#include "kvbm/common/settings.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <limits>

#include "kvbm/common/error.hpp"

namespace kvbm::settings {

std::size_t parse_size(std::string_view name, std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return make_error(ErrorCode::InvalidArgument, "{}='{}' is not a valid size: {}", name, text, why);
  };
  if (text.empty()) throw bad("empty");
  std::uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::result_out_of_range) throw bad("too large");
  if (ec != std::errc() || ptr == begin) throw bad("expected a number such as 4096, 256K or 2M");
  std::uint64_t multiplier = 1;
  std::string_view suffix(ptr, static_cast<std::size_t>(end - ptr));
  if (suffix == "K" || suffix == "k" || suffix == "KiB") multiplier = 1ULL << 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB") multiplier = 1ULL << 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB") multiplier = 1ULL << 30;
  else if (!suffix.empty()) throw bad(fmt::format("unknown suffix '{}' (use K, M or G)", suffix));
  if (value > std::numeric_limits<std::uint64_t>::max() / multiplier) throw bad("too large");
  return static_cast<std::size_t>(value * multiplier);
}

bool parse_bool(std::string_view name, std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "1" || lower == "true" || lower == "yes" || lower == "on") return true;
  if (lower == "0" || lower == "false" || lower == "no" || lower == "off") return false;
  throw make_error(ErrorCode::InvalidArgument, "{}='{}' is not a boolean (use 1/0, true/false, yes/no, on/off)",
                   name, text);
}

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

std::size_t env_size(const char* name, std::size_t fallback, std::size_t min, std::size_t max) {
  auto text = env(name);
  if (!text) return fallback;
  std::size_t value = parse_size(name, *text);
  if (value < min || value > max) {
    throw make_error(ErrorCode::InvalidArgument, "{}='{}' is out of range [{}, {}]", name, *text, min, max);
  }
  return value;
}

bool env_bool(const char* name, bool fallback) {
  auto text = env(name);
  return text ? parse_bool(name, *text) : fallback;
}

std::size_t max_transfer_batch_size() {
  // Dynamo's default is 16 blocks. Measured (bench/results/batch-size-cpu.md): 16-block batches
  // cost ~40% on scattered 4 KiB host copies against 256, and disk throughput is indifferent.
  return env_size("DYN_KVBM_MAX_TRANSFER_BATCH_SIZE", 256, 1, 1u << 20);
}

std::size_t max_concurrent_transfers() {
  return env_size("DYN_KVBM_MAX_CONCURRENT_TRANSFERS", 4, 1, 1024);
}

std::size_t message_spin_us() {
  // Longer than a loopback round trip (~100 us with a GPU block in it), so a steady stream of
  // requests never waits for a wake-up; short enough that an idle process soon stops polling.
  return env_size("KVBM_MESSAGE_SPIN_US", 500, 0, 1000000);
}

std::size_t wait_spin_us() {
  // How long TransferHandle::wait polls (yielding) before it sleeps on its condition variable.
  // The wake-up costs 30-140 us on the GPU machine's VM, 0.7-2.6% of a 256 MiB GPU transfer
  // (measured: bench/results/h100-2026-11-23-session5.md, session7.md); 10 ms covers such a
  // transfer, and the waiting thread has nothing else to do. CUDA's own synchronization spins by
  // default too. A longer transfer of several batches wakes its sleeping waiter when two batches
  // are left, so its end costs no wake-up either (CompletionState::end_is_near).
  return env_size("KVBM_WAIT_SPIN_US", kDefaultWaitSpinUs, 0, 1000000);
}

std::size_t max_message_bytes() {
  // The canonical text of a request of max_block_pairs() pairs of 7-digit indices fits easily.
  return env_size("KVBM_MAX_MESSAGE_BYTES", 16u << 20, 1024, std::size_t{1} << 32);
}

std::size_t max_block_pairs() {
  // Far more blocks than one request of an inference engine moves (a 128K-token sequence in
  // 16-token blocks is 8K blocks); a parsed pair costs tens of bytes before it is checked.
  return env_size("KVBM_MAX_BLOCK_PAIRS", 256u << 10, 1, std::size_t{1} << 28);
}

std::size_t leader_wait_ms() {
  // Engines may start their workers well before the leader: minutes, not seconds.
  return env_size("KVBM_LEADER_WAIT_MS", 300000, 1, std::size_t{1} << 40);
}

std::size_t shutdown_drain_ms() { return env_size("KVBM_SHUTDOWN_DRAIN_MS", 30000, 0, std::size_t{1} << 40); }

std::string log_level() {
  static constexpr std::array kLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  auto text = env("KVBM_LOG");
  if (!text) return "info";
  if (std::find(kLevels.begin(), kLevels.end(), *text) == kLevels.end()) {
    throw make_error(ErrorCode::InvalidArgument,
                     "KVBM_LOG='{}' is not a log level (trace, debug, info, warn, error, critical, off)", *text);
  }
  return *text;
}

}  // namespace kvbm::settings
