#pragma once
// Settings read from environment variables. A variable that is set but malformed is an
// Error naming the variable and the value, never a silent fallback to the default.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kvbm::settings {

// Parsers, exposed so that the CLI and tests use the same rules as the environment.
// Sizes accept a plain count or a K/M/G suffix (powers of 1024): "4096", "256K", "2M".
[[nodiscard]] std::size_t parse_size(std::string_view name, std::string_view text);
[[nodiscard]] bool parse_bool(std::string_view name, std::string_view text);

// Raw lookup: nullopt when the variable is unset.
[[nodiscard]] std::optional<std::string> env(const char* name);

// Typed lookups with a default, validated against [min, max].
[[nodiscard]] std::size_t env_size(const char* name, std::size_t fallback, std::size_t min = 0,
                                   std::size_t max = SIZE_MAX);
[[nodiscard]] bool env_bool(const char* name, bool fallback);

// The library's named settings. Dynamo's names where Dynamo has one (DESIGN.md "Settings").
[[nodiscard]] std::size_t max_transfer_batch_size();  // DYN_KVBM_MAX_TRANSFER_BATCH_SIZE
[[nodiscard]] std::size_t max_concurrent_transfers(); // DYN_KVBM_MAX_CONCURRENT_TRANSFERS
[[nodiscard]] std::string log_level();                // KVBM_LOG
[[nodiscard]] std::size_t message_spin_us();          // KVBM_MESSAGE_SPIN_US
[[nodiscard]] std::size_t wait_spin_us();             // KVBM_WAIT_SPIN_US
[[nodiscard]] std::size_t max_message_bytes();        // KVBM_MAX_MESSAGE_BYTES
[[nodiscard]] std::size_t max_block_pairs();          // KVBM_MAX_BLOCK_PAIRS
[[nodiscard]] std::size_t leader_wait_ms();           // KVBM_LEADER_WAIT_MS
[[nodiscard]] std::size_t shutdown_drain_ms();        // KVBM_SHUTDOWN_DRAIN_MS
inline constexpr std::size_t kDefaultWaitSpinUs = 10000;

}  // namespace kvbm::settings
