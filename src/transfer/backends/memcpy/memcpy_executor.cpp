#include "transfer/backends/memcpy/memcpy_executor.hpp"

#include <cstring>

#include "transfer/engine/join.hpp"

namespace kvbm {

std::vector<CopyOps> split_evenly(const CopyOps& ops, std::size_t parts) {
  std::size_t total = 0;
  for (const auto& op : ops) total += op.bytes;
  const std::size_t share = (total + parts - 1) / parts;
  std::vector<CopyOps> result(1);
  std::size_t filled = 0;
  for (CopyOp op : ops) {
    while (op.bytes > 0) {
      if (filled == share) {
        result.emplace_back();
        filled = 0;
      }
      const std::size_t take = std::min(op.bytes, share - filled);
      result.back().push_back({op.src, op.dst, take});
      op.src.offset += take;
      op.dst.offset += take;
      op.bytes -= take;
      filled += take;
    }
  }
  return result;
}

MemcpyExecutor::MemcpyExecutor(ThreadPool& pool, std::size_t parallel_threshold_bytes)
    : pool_(pool), parallel_threshold_(parallel_threshold_bytes) {}

void MemcpyExecutor::submit(CopyOps ops, DoneCallback done) {
  std::size_t total = 0;
  for (const auto& op : ops) total += op.bytes;
  const std::size_t parts = total >= parallel_threshold_ ? pool_.size() : 1;
  std::vector<CopyOps> shares = parts > 1 ? split_evenly(ops, parts) : std::vector<CopyOps>{std::move(ops)};
  auto join = Join::make(shares.size(), std::move(done));
  for (auto& share : shares) {
    pool_.post([share = std::move(share), join] {
      for (const auto& op : share) std::memcpy(op.dst.address(), op.src.address(), op.bytes);
      join->arrive(Status{});
    });
  }
}

}  // namespace kvbm
