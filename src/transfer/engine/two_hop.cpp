#include "transfer/engine/two_hop.hpp"

#include "common/checked_math.hpp"
#include "transfer/engine/join.hpp"

namespace kvbm {

std::vector<BounceSlice> slice_for_bounce(const CopyOps& ops, std::size_t buffer_bytes) {
  std::vector<BounceSlice> slices;
  std::size_t cursor = buffer_bytes;  // forces a new slice for the first piece
  for (CopyOp op : ops) {
    while (op.bytes > 0) {
      if (cursor == buffer_bytes) {
        slices.emplace_back();
        cursor = 0;
      }
      // buffer_bytes and cursor are whole pages, so a cut piece ends on a page boundary too.
      const std::size_t take = std::min(op.bytes, buffer_bytes - cursor);
      slices.back().pieces.push_back({op.src, op.dst, take, cursor});
      cursor = std::min(buffer_bytes, round_up(cursor + take, kDirectIoAlignment));
      op.src.offset += take;
      op.dst.offset += take;
      op.bytes -= take;
    }
  }
  return slices;
}

void run_two_hop(CopyOps ops, Executor& first, Executor& second, BouncePool& pool, DoneCallback done) {
  std::vector<BounceSlice> slices = slice_for_bounce(ops, pool.buffer_bytes());
  auto join = Join::make(slices.size(), std::move(done));
  for (BounceSlice& slice : slices) {
    pool.acquire([&first, &second, &pool, join, slice = std::move(slice)](Location buffer) {
      if (join->failed()) {  // an earlier slice failed: the transfer is lost, skip the work
        pool.release(buffer);
        join->arrive(Status{});
        return;
      }
      CopyOps in;
      CopyOps out;
      for (const auto& piece : slice.pieces) {
        const Location bounce{buffer.region, buffer.offset + piece.bounce_offset};
        in.push_back({piece.src, bounce, piece.bytes});
        out.push_back({bounce, piece.dst, piece.bytes});
      }
      first.submit(std::move(in), [&second, &pool, join, buffer, out = std::move(out)](Status status) mutable {
        if (!status.ok()) {
          pool.release(buffer);
          join->arrive(status);
          return;
        }
        second.submit(std::move(out), [&pool, join, buffer](Status second_status) {
          pool.release(buffer);
          join->arrive(second_status);
        });
      });
    });
  }
}

}  // namespace kvbm
