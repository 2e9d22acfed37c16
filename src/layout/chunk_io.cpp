#include "layout/chunk_io.hpp"

#include <unistd.h>

#include <cstring>

#include "common/checked_math.hpp"
#include "platform/cuda_runtime.hpp"
#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {
Bytes read_chunk(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer) {
  const ChunkLocation chunk = layout.locate(block, layer, outer);
  Bytes out(chunk.bytes);
  const Region& region = *chunk.region;
  if (region.kind().is_disk()) {
    const std::size_t io_bytes = round_up(chunk.bytes, kDirectIoAlignment);
    const RegionPtr pages = Region::allocate_system(io_bytes);
    const ssize_t got = ::pread(region.fd(), pages->data(), io_bytes, static_cast<off_t>(chunk.offset));
    if (got != static_cast<ssize_t>(io_bytes)) throw errno_error("pread", region.path(), got < 0 ? errno : EIO);
    std::memcpy(out.data(), pages->data(), chunk.bytes);
  } else if (region.kind().is_device()) {
    cuda::copy_to_host(out.data(), region.data() + chunk.offset, chunk.bytes);
  } else {
    std::memcpy(out.data(), region.data() + chunk.offset, chunk.bytes);
  }
  return out;
}

void write_chunk(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer, const Bytes& bytes) {
  const ChunkLocation chunk = layout.locate(block, layer, outer);
  if (bytes.size() != chunk.bytes) {
    throw make_error(ErrorCode::InvalidArgument, "chunk write of {} bytes into a {}-byte chunk", bytes.size(), chunk.bytes);
  }
  const Region& region = *chunk.region;
  if (region.kind().is_disk()) {
    const std::size_t io_bytes = round_up(chunk.bytes, kDirectIoAlignment);
    const RegionPtr pages = Region::allocate_system(io_bytes);
    std::memset(pages->data(), 0, io_bytes);
    std::memcpy(pages->data(), bytes.data(), chunk.bytes);
    const ssize_t put = ::pwrite(region.fd(), pages->data(), io_bytes, static_cast<off_t>(chunk.offset));
    if (put != static_cast<ssize_t>(io_bytes)) throw errno_error("pwrite", region.path(), put < 0 ? errno : EIO);
  } else if (region.kind().is_device()) {
    cuda::copy_to_device(region.data() + chunk.offset, bytes.data(), chunk.bytes);
  } else {
    std::memcpy(region.data() + chunk.offset, bytes.data(), chunk.bytes);
  }
}

std::size_t block_bytes(const Layout& layout) {
  return layout.chunk_bytes() * layout.config().num_layers * layout.config().outer_dim;
}

Bytes read_block(const Layout& layout, std::size_t block) {
  Bytes out;
  out.reserve(block_bytes(layout));
  for (std::size_t layer = 0; layer < layout.config().num_layers; ++layer) {
    for (std::size_t outer = 0; outer < layout.config().outer_dim; ++outer) {
      const Bytes chunk = read_chunk(layout, block, layer, outer);
      out.insert(out.end(), chunk.begin(), chunk.end());
    }
  }
  return out;
}

void write_block(const Layout& layout, std::size_t block, const Bytes& bytes) {
  if (bytes.size() != block_bytes(layout)) {
    throw make_error(ErrorCode::InvalidArgument, "block write of {} bytes into a {}-byte block", bytes.size(),
                     block_bytes(layout));
  }
  const std::size_t chunk = layout.chunk_bytes();
  std::size_t offset = 0;
  for (std::size_t layer = 0; layer < layout.config().num_layers; ++layer) {
    for (std::size_t outer = 0; outer < layout.config().outer_dim; ++outer, offset += chunk) {
      write_chunk(layout, block, layer, outer, Bytes(bytes.begin() + offset, bytes.begin() + offset + chunk));
    }
  }
}

}  // namespace kvbm
