#pragma once
// Where bytes live: plain host memory, pinned host memory, a GPU (by ordinal) or a disk (by id).
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvbm {

class StorageKind {
 public:
  enum class Type : std::uint8_t { System, Pinned, Device, Disk };

  static constexpr StorageKind system() { return StorageKind(Type::System, 0); }
  static constexpr StorageKind pinned() { return StorageKind(Type::Pinned, 0); }
  static constexpr StorageKind device(std::uint32_t ordinal) { return StorageKind(Type::Device, ordinal); }
  static constexpr StorageKind disk(std::uint32_t id) { return StorageKind(Type::Disk, id); }

  // Parses "system", "pinned", "device", "device:N", "disk", "disk:N"; an Error names the text.
  [[nodiscard]] static StorageKind parse(std::string_view text);

  [[nodiscard]] constexpr Type type() const { return type_; }
  // Device ordinal or disk id; 0 for System and Pinned.
  [[nodiscard]] constexpr std::uint32_t index() const { return index_; }
  [[nodiscard]] constexpr bool is_host() const { return type_ == Type::System || type_ == Type::Pinned; }
  [[nodiscard]] constexpr bool is_device() const { return type_ == Type::Device; }
  [[nodiscard]] constexpr bool is_disk() const { return type_ == Type::Disk; }

  // "System", "Pinned", "Device(0)", "Disk(42)": the seed's Debug spelling.
  [[nodiscard]] std::string to_string() const;

  constexpr auto operator<=>(const StorageKind&) const = default;

 private:
  constexpr StorageKind(Type type, std::uint32_t index) : type_(type), index_(index) {}
  Type type_;
  std::uint32_t index_;
};

}  // namespace kvbm
