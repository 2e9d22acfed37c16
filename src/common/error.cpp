#include "kvbm/common/error.hpp"

#include <array>
#include <cstring>
#include <new>

#include "common/make_error.hpp"

namespace kvbm {
namespace {

constexpr std::array kAllCodes = {ErrorCode::InvalidArgument, ErrorCode::OutOfRange, ErrorCode::Unsupported,
                                  ErrorCode::Io,              ErrorCode::Cuda,       ErrorCode::Timeout,
                                  ErrorCode::Cancelled,       ErrorCode::Restarted,  ErrorCode::Internal};

// Length of the valid UTF-8 sequence at the start of `text` (1-4), or 0 when it is not one.
std::size_t utf8_sequence_length(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned lowest = 0;
  if ((lead & 0xe0) == 0xc0) length = 2, lowest = 0x80;
  else if ((lead & 0xf0) == 0xe0) length = 3, lowest = 0x800;
  else if ((lead & 0xf8) == 0xf0) length = 4, lowest = 0x10000;
  else return 0;
  if (text.size() < length) return 0;
  unsigned code = lead & (0x7f >> length);
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i) & 0x3f);
  }
  // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not valid UTF-8.
  if (code < lowest || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) return 0;
  return length;
}

// Copies `text` as valid UTF-8; with `escape_controls`, control characters become \xNN too.
std::string to_valid_utf8(std::string_view text, std::size_t max_bytes, bool escape_controls) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 16);
  std::size_t i = 0;
  while (i < text.size() && out.size() < max_bytes) {
    const std::size_t length = utf8_sequence_length(text.substr(i));
    const auto lead = static_cast<unsigned char>(text[i]);
    if (length == 0 || (escape_controls && length == 1 && (lead < 0x20 || lead == 0x7f))) {
      out += fmt::format("\\x{:02x}", lead);
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  if (i < text.size()) out += fmt::format("...({} bytes)", text.size());
  return out;
}

}  // namespace

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::InvalidArgument: return "invalid_argument";
    case ErrorCode::OutOfRange: return "out_of_range";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Io: return "io";
    case ErrorCode::Cuda: return "cuda";
    case ErrorCode::Timeout: return "timeout";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::Restarted: return "restarted";
    case ErrorCode::Internal: return "internal";
  }
  return "unknown";
}

std::optional<ErrorCode> parse_error_code(std::string_view name) noexcept {
  for (ErrorCode code : kAllCodes) {
    if (to_string(code) == name) return code;
  }
  return std::nullopt;
}

Error::Error(ErrorCode code, std::string_view message)
    : Error(code, to_valid_utf8(message, kMaxErrorMessageBytes, false), 0) {}

Error::Error(ErrorCode code, std::string clean_message, int)
    : std::runtime_error(fmt::format("[{}] {}", to_string(code), clean_message)),
      code_(code),
      message_(std::move(clean_message)) {}

Error errno_error(std::string_view what, std::string_view path, int err) {
  return make_error(ErrorCode::Io, "{} '{}' failed: {} (errno {})", what, printable(path, 512), std::strerror(err), err);
}

Error current_exception_as_error(std::string_view where) noexcept {
  try {
    try {
      throw;
    } catch (const Error& error) {
      return error;
    } catch (const std::bad_alloc&) {
      return make_error(ErrorCode::Internal, "{}: out of memory", where);
    } catch (const std::exception& error) {
      return make_error(ErrorCode::Internal, "{}: {}", where, error.what());
    } catch (...) {
      return make_error(ErrorCode::Internal, "{}: an exception that is not a std::exception", where);
    }
  } catch (...) {
    // Formatting itself failed (out of memory): a message without formatting.
    return Error(ErrorCode::Internal, std::string_view("an error occurred while reporting an error"));
  }
}

const Error& Status::error() const noexcept {
  static const Error kNoError(ErrorCode::Internal, std::string_view("error() asked of an ok Status: there is no error"));
  return error_ ? *error_ : kNoError;
}

std::string printable(std::string_view text, std::size_t max_bytes) { return to_valid_utf8(text, max_bytes, true); }

}  // namespace kvbm
