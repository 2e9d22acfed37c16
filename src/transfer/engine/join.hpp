#pragma once
// Waits for N asynchronous parts and reports once: ok if all were ok, else the first error.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "transfer/engine/copy_op.hpp"

namespace kvbm {

class Join : public std::enable_shared_from_this<Join> {
 public:
  // `few_left`, if given, runs once when `few` parts are left to arrive (never when there are
  // no more than `few` parts in all).
  static std::shared_ptr<Join> make(std::size_t parts, DoneCallback done, std::function<void()> few_left = {},
                                    std::size_t few = 1) {
    auto join = std::shared_ptr<Join>(new Join(parts, std::move(done), std::move(few_left), few));
    if (parts == 0) join->finish();
    return join;
  }

  void arrive(const Status& status) {
    if (!status.ok()) {
      std::lock_guard lock(mutex_);
      if (!first_error_) first_error_ = status;
    }
    const std::size_t left = remaining_.fetch_sub(1) - 1;
    if (left == 0) finish();
    else if (left == few_ && few_left_) few_left_();
  }

  // A callback that arrives at this join, for handing to an executor.
  [[nodiscard]] DoneCallback arrival() {
    return [self = shared_from_this()](Status status) { self->arrive(status); };
  }

  [[nodiscard]] bool failed() {
    std::lock_guard lock(mutex_);
    return first_error_.has_value();
  }

 private:
  Join(std::size_t parts, DoneCallback done, std::function<void()> few_left, std::size_t few)
      : remaining_(parts), done_(std::move(done)), few_left_(std::move(few_left)), few_(few) {}
  void finish() {
    Status status;
    {
      std::lock_guard lock(mutex_);
      if (first_error_) status = *first_error_;
    }
    done_(std::move(status));
  }

  std::atomic<std::size_t> remaining_;
  DoneCallback done_;
  std::function<void()> few_left_;
  std::size_t few_;
  std::mutex mutex_;
  std::optional<Status> first_error_;
};

}  // namespace kvbm
