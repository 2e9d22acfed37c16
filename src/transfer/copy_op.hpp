#pragma once
// One contiguous copy between two regions: what a transfer expands into and executors run.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "kvbm/common/error.hpp"
#include "kvbm/memory/region.hpp"

namespace kvbm {

struct Location {
  const Region* region = nullptr;
  std::size_t offset = 0;
  // Host or device address of this location (memory regions only).
  [[nodiscard]] std::byte* address() const { return region->data() + offset; }
};

struct CopyOp {
  Location src;
  Location dst;
  std::size_t bytes = 0;
};

using CopyOps = std::vector<CopyOp>;
using DoneCallback = std::function<void(Status)>;

// Runs copy ops of one kind asynchronously and calls `done` once, from any thread, when all
// have finished or the first has failed (after the others stop touching memory).
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void submit(CopyOps ops, DoneCallback done) = 0;
};

}  // namespace kvbm
