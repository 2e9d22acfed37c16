#pragma once
// UCX prints its own errors on stdout. A call whose failure kvbm expects and handles itself,
// such as asking shared-memory transports for peer-failure handling (which they lack, so the
// endpoint is made again without it), would put an ERROR line among a program's output: in
// `kvbm bench --remote sm --json`, ahead of the JSON. While a QuietUcxCalls lives, UCX messages
// logged on its thread go to kvbm's log at debug level instead; other threads' are untouched.
namespace kvbm::remote {

class QuietUcxCalls {
 public:
  QuietUcxCalls();
  ~QuietUcxCalls();
  QuietUcxCalls(const QuietUcxCalls&) = delete;
  QuietUcxCalls& operator=(const QuietUcxCalls&) = delete;

 private:
  bool was_quiet_;
};

}  // namespace kvbm::remote
