#pragma once
// One contiguous copy between two regions: what a transfer expands into and executors run.
#include <algorithm>
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

// Calls `fn(piece)`, in order, for every op cut into pieces of at most `max_bytes` (both sides
// advance together): disk I/Os, cuFile calls and copy-kernel descriptors are bounded this way.
template <typename Fn>
void for_each_piece(const CopyOps& ops, std::size_t max_bytes, Fn&& fn) {
  for (const CopyOp& op : ops) {
    for (std::size_t offset = 0; offset < op.bytes; offset += max_bytes) {
      fn(CopyOp{{op.src.region, op.src.offset + offset}, {op.dst.region, op.dst.offset + offset},
                std::min(max_bytes, op.bytes - offset)});
    }
  }
}

// How many pieces for_each_piece makes.
[[nodiscard]] inline std::size_t count_pieces(const CopyOps& ops, std::size_t max_bytes) {
  std::size_t pieces = 0;
  for (const CopyOp& op : ops) pieces += (op.bytes + max_bytes - 1) / max_bytes;
  return pieces;
}
using DoneCallback = std::function<void(Status)>;

// Runs copy ops of one kind asynchronously and calls `done` once, from any thread, when all
// have finished or the first has failed (after the others stop touching memory).
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void submit(CopyOps ops, DoneCallback done) = 0;
};

}  // namespace kvbm
