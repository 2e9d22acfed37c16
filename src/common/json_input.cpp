#include "common/json_input.hpp"

#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm::json_input {

Shape scan_shape(std::string_view text) {
  Shape shape;
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++shape.containers;
      shape.depth = std::max(shape.depth, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return shape;
}

json parse(std::string_view text, std::string_view what, std::optional<std::size_t> max_containers) {
  const Shape shape = scan_shape(text);
  if (shape.depth > kMaxDepth) {
    throw make_error(ErrorCode::InvalidArgument, "{} nests deeper than {} levels ({} bytes)", what, kMaxDepth,
                     text.size());
  }
  if (max_containers && shape.containers > *max_containers) {
    throw make_error(ErrorCode::InvalidArgument, "{} holds {} arrays and objects, more than the {} allowed", what,
                     shape.containers, *max_containers);
  }
  json parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded()) {
    throw make_error(ErrorCode::InvalidArgument, "{} is not valid JSON ({} bytes: {})", what, text.size(),
                     printable(text, 60));
  }
  return parsed;
}

json parse_object(std::string_view text, std::string_view what) {
  json parsed = parse(text, what);
  if (!parsed.is_object()) {
    throw make_error(ErrorCode::InvalidArgument, "{} must be a JSON object, got {}", what, describe(parsed));
  }
  return parsed;
}

std::string describe(const json& value) {
  switch (value.type()) {
    case json::value_t::array: return fmt::format("an array of {} elements", value.size());
    case json::value_t::object: return fmt::format("an object of {} fields", value.size());
    case json::value_t::string: return "\"" + printable(value.get_ref<const std::string&>(), 60) + "\"";
    default: return printable(dump(value), 60);
  }
}

const json* find(const json& object, std::string_view name) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

std::optional<std::uint64_t> optional_u64(const json& object, std::string_view name, std::string_view what) {
  const json* value = find(object, name);
  if (value == nullptr || value->is_null()) return std::nullopt;
  if (!value->is_number_unsigned()) {
    throw make_error(ErrorCode::InvalidArgument, "{}: '{}' must be a non-negative integer, got {}", what, name,
                     describe(*value));
  }
  return value->get<std::uint64_t>();
}

std::uint64_t required_u64(const json& object, std::string_view name, std::string_view what) {
  const auto value = optional_u64(object, name, what);
  if (!value) throw make_error(ErrorCode::InvalidArgument, "{}: missing field '{}'", what, name);
  return *value;
}

std::optional<std::string> optional_string(const json& object, std::string_view name, std::string_view what,
                                           std::size_t max_bytes) {
  const json* value = find(object, name);
  if (value == nullptr || value->is_null()) return std::nullopt;
  if (!value->is_string()) {
    throw make_error(ErrorCode::InvalidArgument, "{}: '{}' must be a string, got {}", what, name, describe(*value));
  }
  const auto& text = value->get_ref<const std::string&>();
  if (text.size() > max_bytes) {
    throw make_error(ErrorCode::InvalidArgument, "{}: '{}' is {} bytes long, more than the {} allowed", what, name,
                     text.size(), max_bytes);
  }
  return text;
}

std::string required_string(const json& object, std::string_view name, std::string_view what, std::size_t max_bytes) {
  auto value = optional_string(object, name, what, max_bytes);
  if (!value) throw make_error(ErrorCode::InvalidArgument, "{}: missing field '{}'", what, name);
  return std::move(*value);
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace kvbm::json_input
