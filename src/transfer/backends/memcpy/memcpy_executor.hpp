#pragma once
// Host <-> host copies. Small requests run as one task; above a threshold the bytes are split
// evenly across the pool so several cores share the memory bandwidth.
#include "common/thread_pool.hpp"
#include "transfer/engine/copy_op.hpp"

namespace kvbm {

class MemcpyExecutor final : public Executor {
 public:
  MemcpyExecutor(ThreadPool& pool, std::size_t parallel_threshold_bytes);
  void submit(CopyOps ops, DoneCallback done) override;

 private:
  ThreadPool& pool_;
  std::size_t parallel_threshold_;
};

// Splits `ops` into `parts` lists of nearly equal bytes, cutting ops where needed.
[[nodiscard]] std::vector<CopyOps> split_evenly(const CopyOps& ops, std::size_t parts);

}  // namespace kvbm
