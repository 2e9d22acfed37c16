#include "transfer/backends/disk/disk_request.hpp"

#include <cstring>

#include "common/checked_math.hpp"
#include "common/make_error.hpp"

namespace kvbm {

std::size_t DiskUnit::io_bytes() const { return round_up(bytes, kDirectIoAlignment); }

namespace {

bool piece_needs_staging(const std::byte* memory, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(memory) % kDirectIoAlignment != 0 || bytes % kDirectIoAlignment != 0;
}

}  // namespace

bool DiskUnit::needs_staging() const {
  return pieces.size() != 1 || piece_needs_staging(pieces.front().memory, bytes);
}

std::byte* prepare_io(const DiskUnit& unit, std::byte* staging) {
  if (!unit.needs_staging()) return unit.pieces.front().memory;
  if (unit.write) {
    // The gaps and the rest of the last page are padding slots of the layout: zeros.
    std::size_t filled = 0;
    for (const DiskPiece& piece : unit.pieces) {
      std::memset(staging + filled, 0, piece.offset - filled);
      std::memcpy(staging + piece.offset, piece.memory, piece.bytes);
      filled = piece.offset + piece.bytes;
    }
    std::memset(staging + filled, 0, unit.io_bytes() - filled);
  }
  return staging;
}

Status finish_io(const DiskUnit& unit, const std::byte* staging, long result) {
  const char* verb = unit.write ? "write" : "read";
  if (result < 0) {
    const int err = static_cast<int>(-result);
    return make_error(ErrorCode::Io, "{} of {} bytes at offset {} of '{}' failed: {} (errno {})", verb,
                      unit.io_bytes(), unit.file_offset, unit.file->path(), std::strerror(err), err);
  }
  if (static_cast<std::size_t>(result) < unit.io_bytes()) {
    return make_error(ErrorCode::Io, "short {}: {} of {} bytes at offset {} of '{}' (file truncated or full?)", verb,
                      result, unit.io_bytes(), unit.file_offset, unit.file->path());
  }
  if (!unit.write && unit.needs_staging()) {
    for (const DiskPiece& piece : unit.pieces) std::memcpy(piece.memory, staging + piece.offset, piece.bytes);
  }
  return {};
}

DiskRequest::DiskRequest(const CopyOps& ops, std::size_t max_unit_bytes, DoneCallback done)
    : max_unit_bytes_(max_unit_bytes), done_(std::move(done)) {
  // Units first refer to their pieces by index (pieces_ still grows), then by span.
  std::vector<std::pair<std::size_t, std::size_t>> piece_ranges;
  for_each_piece(ops, max_unit_bytes, [&](const CopyOp& piece) {
    const bool write = piece.dst.region->kind().is_disk();
    const Location& file = write ? piece.dst : piece.src;
    std::byte* address = (write ? piece.src : piece.dst).address();
    if (!units_.empty()) {
      DiskUnit& last = units_.back();
      const std::size_t slot = round_up(last.bytes, kDirectIoAlignment);
      const bool staged = piece_needs_staging(address, piece.bytes) &&
                          (piece_ranges.back().second > 1 || piece_needs_staging(pieces_.back().memory, last.bytes));
      if (staged && last.file == file.region && last.write == write && last.file_offset + slot == file.offset &&
          slot + piece.bytes <= max_unit_bytes) {
        pieces_.push_back({address, slot, piece.bytes});
        ++piece_ranges.back().second;
        last.bytes = slot + piece.bytes;
        return;
      }
    }
    piece_ranges.emplace_back(pieces_.size(), 1);
    pieces_.push_back({address, 0, piece.bytes});
    units_.push_back({file.region, file.offset, piece.bytes, write, {}});
  });
  for (std::size_t i = 0; i < units_.size(); ++i) {
    units_[i].pieces = std::span<const DiskPiece>(pieces_).subspan(piece_ranges[i].first, piece_ranges[i].second);
  }
}

const DiskUnit* DiskRequest::take() {
  std::lock_guard lock(mutex_);
  if (error_ || next_ == units_.size()) return nullptr;
  ++outstanding_;
  return &units_[next_++];
}

void DiskRequest::finish(const Status& status) {
  Status outcome;
  {
    std::lock_guard lock(mutex_);
    if (!status.ok() && !error_) error_ = status.error();
    --outstanding_;
    const bool drained = error_ || next_ == units_.size();
    if (outstanding_ != 0 || !drained) return;
    if (error_) outcome = *error_;
    next_ = units_.size();  // nothing more is taken once done has been called
  }
  done_(std::move(outcome));
}

void DiskBackend::submit(std::shared_ptr<DiskRequest> request) {
  if (request->max_unit_bytes() > max_unit_bytes_) {
    request->complete_unrun(make_error(ErrorCode::InvalidArgument,
                              "disk request cut into I/Os of up to {} bytes, more than the backend's io_bytes {}",
                              request->max_unit_bytes(), max_unit_bytes_));
    return;
  }
  if (request->empty()) {
    request->complete_unrun(Status{});
    return;
  }
  start(std::move(request));
}

}  // namespace kvbm
