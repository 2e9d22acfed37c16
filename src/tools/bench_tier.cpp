#include "bench_tier.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "common/checked_math.hpp"
#include "kvbm/common/error.hpp"
#include "layout/chunk_io.hpp"
#include "platform/cuda_runtime.hpp"

namespace kvbm::tools {
namespace {

const Region& only_region(const Layout& layout) { return *layout.regions().front(); }

// Whole-file O_DIRECT I/O from an aligned host buffer, looping over the kernel's per-call cap.
void direct_io(const Region& file, std::byte* buffer, std::size_t bytes, bool write) {
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t moved = write ? ::pwrite(file.fd(), buffer + done, bytes - done, static_cast<off_t>(done))
                                : ::pread(file.fd(), buffer + done, bytes - done, static_cast<off_t>(done));
    if (moved <= 0) throw errno_error(write ? "bench pwrite" : "bench pread", file.path(), moved < 0 ? errno : EIO);
    done += static_cast<std::size_t>(moved);
  }
}

template <typename Fn>
double seconds_of(Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

namespace {

// Whether block b starts at b * block_bytes in the layout's one region (no chunk padding).
bool blocks_end_to_end(const Layout& layout) {
  const std::size_t bytes = block_bytes(layout);
  return layout.config().num_blocks < 2 || layout.locate(1, 0, 0).offset == bytes;
}

}  // namespace

void store_blocks(const Layout& layout, const HostBytes& bytes) {
  const std::size_t block = block_bytes(layout);
  if (!blocks_end_to_end(layout)) {
    for (std::size_t b = 0; b < layout.config().num_blocks; ++b) {
      write_block(layout, b, Bytes(bytes.begin() + static_cast<long>(b * block),
                                   bytes.begin() + static_cast<long>((b + 1) * block)));
    }
    return;
  }
  const Region& region = only_region(layout);
  switch (region.kind().type()) {
    case StorageKind::Type::Disk: {
      const std::size_t size = round_up(bytes.size(), kDirectIoAlignment);
      RegionPtr staging = Region::allocate_system(size);
      std::memcpy(staging->data(), bytes.data(), bytes.size());
      direct_io(region, staging->data(), size, true);
      return;
    }
    case StorageKind::Type::Device: cuda::copy_to_device(region.data(), bytes.data(), bytes.size()); return;
    default: std::memcpy(region.data(), bytes.data(), bytes.size()); return;
  }
}

HostBytes load_blocks(const Layout& layout) {
  const std::size_t block = block_bytes(layout);
  HostBytes out(layout.config().num_blocks * block);
  if (!blocks_end_to_end(layout)) {
    for (std::size_t b = 0; b < layout.config().num_blocks; ++b) {
      const Bytes bytes = read_block(layout, b);
      std::copy(bytes.begin(), bytes.end(), out.begin() + static_cast<long>(b * block));
    }
    return out;
  }
  const Region& region = only_region(layout);
  switch (region.kind().type()) {
    case StorageKind::Type::Disk: {
      const std::size_t size = round_up(out.size(), kDirectIoAlignment);
      RegionPtr staging = Region::allocate_system(size);
      direct_io(region, staging->data(), size, false);
      std::memcpy(out.data(), staging->data(), out.size());
      break;
    }
    case StorageKind::Type::Device: cuda::copy_to_host(out.data(), region.data(), out.size()); break;
    default: std::memcpy(out.data(), region.data(), out.size()); break;
  }
  return out;
}

double ceiling_gbps(const Layout& src, const Layout& dst, std::size_t bytes) {
  const std::size_t moved = bytes;
  const Region& from = only_region(src);
  const Region& to = only_region(dst);
  double seconds = 0;
  if (from.kind().is_disk() || to.kind().is_disk()) {
    // O_DIRECT moves whole aligned pages; a disk region holds them (chunks are padded).
    bytes = round_up(bytes, kDirectIoAlignment);
    // Disk pairs: the raw disk figure. A device side is not part of it (the two-hop through
    // pinned memory is judged against what the disk alone can do).
    RegionPtr staging;
    const auto host_side = [&](const Region& region) -> std::byte* {
      if (region.kind().is_host() && region.size() >= bytes) return region.data();
      staging = Region::allocate_system(bytes);
      std::memset(staging->data(), 0, bytes);  // fault the pages in before the clock starts
      return staging->data();
    };
    if (from.kind().is_disk() && to.kind().is_disk()) {
      staging = Region::allocate_system(bytes);
      std::memset(staging->data(), 0, bytes);
      std::byte* buffer = staging->data();
      seconds = seconds_of([&] {
        direct_io(from, buffer, bytes, false);
        direct_io(to, buffer, bytes, true);
      });
    } else if (to.kind().is_disk()) {
      std::byte* buffer = host_side(from);
      seconds = seconds_of([&] { direct_io(to, buffer, bytes, true); });
    } else {
      std::byte* buffer = host_side(to);
      seconds = seconds_of([&] { direct_io(from, buffer, bytes, false); });
    }
  } else if (from.kind().is_device() || to.kind().is_device()) {
    seconds = cuda::timed_memcpy_seconds(to.data(), from.data(), bytes);
  } else {
    seconds = seconds_of([&] { std::memcpy(to.data(), from.data(), bytes); });
  }
  // The figure is per byte moved: rounding a disk copy up to the alignment costs the ceiling.
  return static_cast<double>(moved) / seconds / 1e9;
}

double plain_batch_gbps(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs) {
  std::vector<void*> dsts;
  std::vector<const void*> srcs;
  std::vector<std::size_t> sizes;
  std::size_t bytes = 0;
  for (const auto& [from, to] : pairs) {
    const ChunkLocation s = src.locate(from, 0, 0);
    const ChunkLocation d = dst.locate(to, 0, 0);
    srcs.push_back(s.region->data() + s.offset);
    dsts.push_back(d.region->data() + d.offset);
    sizes.push_back(s.bytes);
    bytes += s.bytes;
  }
  return static_cast<double>(bytes) / cuda::timed_batch_seconds(dsts, srcs, sizes) / 1e9;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::string human_size(std::size_t bytes) {
  if (bytes % (1u << 20) == 0) return fmt::format("{}M", bytes >> 20);
  if (bytes % (1u << 10) == 0) return fmt::format("{}K", bytes >> 10);
  return std::to_string(bytes);
}

}  // namespace kvbm::tools
