#pragma once
// Reading JSON that comes from outside the process (the wire, a command line). Nesting is
// bounded before the parser runs, so no later step (destruction, a dump for a message) recurses
// deeply; every typed access is an InvalidArgument naming the field and, briefly, its value.
// The JSON library's own exceptions never escape these functions.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kvbm::json_input {

using nlohmann::json;

inline constexpr std::size_t kMaxDepth = 32;

struct Shape {
  std::size_t depth = 0;       // deepest nesting of arrays and objects
  std::size_t containers = 0;  // arrays and objects in all
};
// The nesting of `text`, read without parsing it (strings and their escapes skipped).
[[nodiscard]] Shape scan_shape(std::string_view text);

// Parses `text` ("`what` is not valid JSON", "`what` nests deeper than 32 levels"). With
// `max_containers`, a text holding more arrays and objects is refused before it is parsed: a
// parsed document takes tens of bytes per value.
[[nodiscard]] json parse(std::string_view text, std::string_view what,
                         std::optional<std::size_t> max_containers = std::nullopt);
// parse() that also requires an object.
[[nodiscard]] json parse_object(std::string_view text, std::string_view what);

// A short description of a value for a message: a scalar as JSON (long strings cut), a
// container as its kind and size. Never recursive.
[[nodiscard]] std::string describe(const json& value);

// Typed fields of an object. `what` names the object in messages ("kvbm.fill data").
[[nodiscard]] const json* find(const json& object, std::string_view name);
[[nodiscard]] std::uint64_t required_u64(const json& object, std::string_view name, std::string_view what);
[[nodiscard]] std::optional<std::uint64_t> optional_u64(const json& object, std::string_view name, std::string_view what);
[[nodiscard]] std::string required_string(const json& object, std::string_view name, std::string_view what,
                                          std::size_t max_bytes = 4096);
[[nodiscard]] std::optional<std::string> optional_string(const json& object, std::string_view name,
                                                         std::string_view what, std::size_t max_bytes = 4096);

// JSON text of `value` with invalid UTF-8 in its strings replaced, so that a value holding
// outside text never makes dump() throw.
[[nodiscard]] std::string dump(const json& value);

}  // namespace kvbm::json_input
