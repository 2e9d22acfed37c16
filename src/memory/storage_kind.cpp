#include "kvbm/memory/storage_kind.hpp"

#include <charconv>

#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {

StorageKind StorageKind::parse(std::string_view text) {
  const auto colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  std::uint32_t index = 0;
  if (colon != std::string_view::npos) {
    const std::string_view digits = text.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size()) {
      throw make_error(ErrorCode::InvalidArgument, "storage kind '{}': index '{}' is not a non-negative integer",
                       text, digits);
    }
  }
  const bool indexed = colon != std::string_view::npos;
  if (name == "system" && !indexed) return system();
  if (name == "pinned" && !indexed) return pinned();
  if (name == "device") return device(index);
  if (name == "disk") return disk(index);
  throw make_error(ErrorCode::InvalidArgument,
                   "unknown storage kind '{}' (expected system, pinned, device[:N] or disk[:N])", text);
}

std::string StorageKind::to_string() const {
  switch (type_) {
    case Type::System: return "System";
    case Type::Pinned: return "Pinned";
    case Type::Device: return fmt::format("Device({})", index_);
    case Type::Disk: return fmt::format("Disk({})", index_);
  }
  return "Unknown";
}

}  // namespace kvbm
