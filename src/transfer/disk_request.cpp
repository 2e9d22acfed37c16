#include "transfer/disk_request.hpp"

#include <cstring>

#include "kvbm/common/checked_math.hpp"

namespace kvbm {

std::size_t DiskUnit::io_bytes() const { return round_up(bytes, kDirectIoAlignment); }

bool DiskUnit::needs_staging() const {
  return reinterpret_cast<std::uintptr_t>(memory) % kDirectIoAlignment != 0 || bytes % kDirectIoAlignment != 0;
}

std::byte* prepare_io(const DiskUnit& unit, std::byte* staging) {
  if (!unit.needs_staging()) return unit.memory;
  if (unit.write) {
    std::memcpy(staging, unit.memory, unit.bytes);
    // The rest of the last page belongs to this chunk's 4 KiB slot on disk: pad with zeros.
    std::memset(staging + unit.bytes, 0, unit.io_bytes() - unit.bytes);
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
  if (!unit.write && unit.needs_staging()) std::memcpy(unit.memory, staging, unit.bytes);
  return {};
}

DiskRequest::DiskRequest(const CopyOps& ops, std::size_t max_unit_bytes, DoneCallback done) : done_(std::move(done)) {
  for (const CopyOp& op : ops) {
    const bool write = op.dst.region->kind().is_disk();
    const Location& file = write ? op.dst : op.src;
    const Location& memory = write ? op.src : op.dst;
    for (std::size_t done_bytes = 0; done_bytes < op.bytes; done_bytes += max_unit_bytes) {
      units_.push_back({file.region, file.offset + done_bytes, memory.address() + done_bytes,
                        std::min(max_unit_bytes, op.bytes - done_bytes), write});
    }
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

}  // namespace kvbm
