#include "kvbm/common/settings.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <limits>

#include "common/make_error.hpp"
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

}  // namespace kvbm::settings
