#pragma once
// The library's one error type, and its one rule:
// - A call that does its work before it returns (validation, construction, execute(), cancel(),
//   wait_for_workers()) throws kvbm::Error when it fails.
// - A call that starts work and returns a handle (TransferContext::transfer, TransferPath::post,
//   BlockTransferHandler::start) never throws for bad input: the failure is the handle's Status.
// - An outcome gathered from elsewhere is a Status too: a transfer's completion, each rank's
//   answer in a leader's result (LeaderResult::status is ok only when every rank's is).
// A Status is a plain value: ok, or an Error (code + message); asking an ok status for its error
// gives an Internal error saying so, never undefined behaviour.
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kvbm {

enum class ErrorCode {
  InvalidArgument,  // a value from the caller is malformed or inconsistent
  OutOfRange,       // an index or size past what exists
  Unsupported,      // a valid request kvbm cannot serve here (e.g. no GPU)
  Io,               // a system call on a file failed
  Cuda,             // the CUDA runtime reported an error
  Timeout,
  Cancelled,
  Restarted,        // a worker rank came back as a new process: the blocks it held are gone
  Internal,
};

[[nodiscard]] std::string_view to_string(ErrorCode code) noexcept;
// The code whose to_string() is `name`; nullopt for any other text.
[[nodiscard]] std::optional<ErrorCode> parse_error_code(std::string_view name) noexcept;

class Error : public std::runtime_error {
 public:
  // Messages often quote outside input: the message is made valid UTF-8 and cut to
  // kMaxErrorMessageBytes, so an error can always be logged and serialised.
  static constexpr std::size_t kMaxErrorMessageBytes = 4096;
  Error(ErrorCode code, std::string_view message);
  [[nodiscard]] ErrorCode code() const noexcept { return code_; }
  // The message without the "[code] " prefix that what() carries.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  Error(ErrorCode code, std::string clean_message, int);  // the message already checked
  ErrorCode code_;
  std::string message_;
};

// An Error whose message names the failing call, the path and the errno text.
[[nodiscard]] Error errno_error(std::string_view what, std::string_view path, int err);

// Inside a catch block: the exception in flight as an Error. A kvbm::Error is returned as it
// is; anything else (a library's exception, bad_alloc) becomes Internal, its message prefixed
// with `where`. This is what every boundary that outside input crosses catches with (...).
[[nodiscard]] Error current_exception_as_error(std::string_view where) noexcept;

// `text` as it may appear in a message: valid UTF-8 (other bytes and control characters as
// \xNN), at most `max_bytes` long before a "...(N bytes)" marker.
[[nodiscard]] std::string printable(std::string_view text, std::size_t max_bytes = 120);

// Outcome of an asynchronous operation: ok, or the Error that ended it.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  [[nodiscard]] bool ok() const noexcept { return !error_.has_value(); }
  // The carried error; asked of an ok status, an Internal error saying so (never undefined).
  [[nodiscard]] const Error& error() const noexcept;
  // Throws the carried error, if any.
  void throw_if_error() const {
    if (error_) throw *error_;
  }
  [[nodiscard]] std::string to_string() const { return ok() ? "ok" : error_->what(); }

 private:
  std::optional<Error> error_;
};

}  // namespace kvbm
