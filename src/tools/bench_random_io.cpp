#include "bench_random_io.hpp"

#include <liburing.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "common/checked_math.hpp"
#include "common/make_error.hpp"
#include "layout/chunk_io.hpp"

namespace kvbm::tools {

double random_io_gbps(const Layout& disk, std::span<const std::size_t> blocks, bool write, std::size_t queue_depth) {
  if (blocks.empty()) return 0;
  const Region& file = *disk.regions().front();
  const std::size_t chunk = block_bytes(disk);
  const std::size_t io_bytes = round_up(chunk, kDirectIoAlignment);
  queue_depth = std::clamp<std::size_t>(queue_depth, 1, blocks.size());
  // A buffer per slot in flight, as fio's iodepth: the figure is the disk's, not memory's.
  RegionPtr buffers = Region::allocate_system(queue_depth * io_bytes);
  std::memset(buffers->data(), 0x5a, queue_depth * io_bytes);
  std::vector<std::size_t> order(blocks.begin(), blocks.end());
  std::shuffle(order.begin(), order.end(), std::mt19937_64(blocks.size()));

  io_uring ring{};
  const int made = io_uring_queue_init(static_cast<unsigned>(queue_depth), &ring, 0);
  if (made < 0) throw make_error(ErrorCode::Unsupported, "random-I/O ceiling: io_uring_queue_init: {}", std::strerror(-made));
  std::size_t next = 0;
  std::size_t done = 0;
  std::vector<std::size_t> free_slots(queue_depth);
  std::iota(free_slots.begin(), free_slots.end(), 0);
  const auto start = std::chrono::steady_clock::now();
  try {
    while (done < order.size()) {
      // Every free slot gets the next block; one io_uring_enter submits them all.
      while (!free_slots.empty() && next < order.size()) {
        const std::size_t slot = free_slots.back();
        free_slots.pop_back();
        const ChunkLocation at = disk.locate(order[next++], 0, 0);
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        std::byte* buffer = buffers->data() + slot * io_bytes;
        if (write) io_uring_prep_write(sqe, file.fd(), buffer, static_cast<unsigned>(io_bytes), at.offset);
        else io_uring_prep_read(sqe, file.fd(), buffer, static_cast<unsigned>(io_bytes), at.offset);
        io_uring_sqe_set_data64(sqe, slot);
      }
      io_uring_cqe* cqe = nullptr;
      const int waited = io_uring_submit_and_wait(&ring, 1);
      if (waited < 0 && waited != -EINTR) throw errno_error("io_uring_submit_and_wait", file.path(), -waited);
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        ++seen;
        if (cqe->res < 0) throw errno_error(write ? "random pwrite" : "random pread", file.path(), -cqe->res);
        free_slots.push_back(io_uring_cqe_get_data64(cqe));
        ++done;
      }
      io_uring_cq_advance(&ring, seen);
    }
  } catch (...) {
    io_uring_queue_exit(&ring);
    throw;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  io_uring_queue_exit(&ring);
  // Per byte of the blocks: padding to the alignment is the disk's cost, as in kvbm's figure.
  return static_cast<double>(order.size() * chunk) / seconds / 1e9;
}

RandomIoCeiling best_random_io(const Layout& disk, std::span<const std::size_t> blocks, bool write,
                               std::size_t also_depth) {
  // Deeper than there are blocks is the same as all of them at once.
  std::vector<std::size_t> depths{32, 64, 128, 256, 512, also_depth};
  for (std::size_t& depth : depths) depth = std::min(depth, blocks.size());
  std::sort(depths.begin(), depths.end());
  depths.erase(std::unique(depths.begin(), depths.end()), depths.end());
  RandomIoCeiling best;
  for (const std::size_t depth : depths) {
    const double gbps = random_io_gbps(disk, blocks, write, depth);
    if (gbps > best.gbps) best = {gbps, depth};
  }
  return best;
}

}  // namespace kvbm::tools
