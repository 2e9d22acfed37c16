#pragma once
// Parsers for setting values given as text (environment variables, command-line options), shared
// so that every source follows the same rules. A malformed value is an Error naming the setting
// and the value, never a silent fallback.
#include <cstddef>
#include <string_view>

namespace kvbm::settings {

// Sizes accept a plain count or a K/M/G suffix (powers of 1024): "4096", "256K", "2M".
[[nodiscard]] std::size_t parse_size(std::string_view name, std::string_view text);
[[nodiscard]] bool parse_bool(std::string_view name, std::string_view text);

}  // namespace kvbm::settings
