#pragma once
// A batch of O_DIRECT reads or writes between host memory and disk files, as the disk backends
// see it: whole-page "units" at 4 KiB-aligned file offsets. Units whose memory is unaligned or
// whose length is not whole pages go through a staging buffer; the rest move directly.
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "kvbm/transfer/backend_options.hpp"
#include "transfer/engine/copy_op.hpp"

namespace kvbm {

// One run of the caller's bytes inside a unit.
struct DiskPiece {
  std::byte* memory = nullptr;  // the caller's bytes
  std::size_t offset = 0;       // from the unit's first byte on disk; a multiple of 4 KiB
  std::size_t bytes = 0;
};

// One O_DIRECT read or write. Chunks that go through staging anyway and lie in consecutive
// 4 KiB slots of a file (small chunks padded to a page each: 8 x 1 KiB chunks of one block)
// share a unit: one I/O instead of one each, the padding between them written as zeros.
struct DiskUnit {
  const Region* file = nullptr;
  std::size_t file_offset = 0;  // 4 KiB-aligned
  std::size_t bytes = 0;        // from the first byte to the end of the last piece
  bool write = false;           // memory -> file
  std::span<const DiskPiece> pieces;

  [[nodiscard]] std::size_t io_bytes() const;        // bytes rounded up to whole pages
  [[nodiscard]] bool needs_staging() const;           // several pieces, memory unaligned or a partial page
};

// `staging` is a page-aligned buffer of at least the largest unit, owned by a backend slot or
// thread (Region::allocate_system gives one).
// Before the I/O: the address to hand the kernel (the staging buffer filled for a write).
[[nodiscard]] std::byte* prepare_io(const DiskUnit& unit, std::byte* staging);
// After the I/O: checks the result (bytes moved, or -errno) and copies a staged read out.
[[nodiscard]] Status finish_io(const DiskUnit& unit, const std::byte* staging, long result);

class DiskRequest {
 public:
  // Splits ops (each with exactly one disk side, in file order) into units of at most
  // `max_unit_bytes`, joining staged chunks in consecutive slots.
  DiskRequest(const CopyOps& ops, std::size_t max_unit_bytes, DoneCallback done);

  // The next unit to run, or nullptr when none is left or the request has failed.
  [[nodiscard]] const DiskUnit* take();
  // Records a unit's outcome; the last one to finish calls `done` with the first error.
  void finish(const Status& status);
  [[nodiscard]] bool empty() const { return units_.empty(); }
  // For a request that never runs (no units, or refused): completes it with `status` at once.
  void complete_unrun(Status status) { done_(std::move(status)); }
  [[nodiscard]] std::size_t unit_count() const { return units_.size(); }
  [[nodiscard]] std::size_t max_unit_bytes() const { return max_unit_bytes_; }

 private:
  std::size_t max_unit_bytes_;
  std::vector<DiskPiece> pieces_;  // filled first; units_ point into it
  std::vector<DiskUnit> units_;
  DoneCallback done_;
  std::mutex mutex_;
  std::size_t next_ = 0;
  std::size_t outstanding_ = 0;
  std::optional<Error> error_;
};

// A disk backend runs DiskRequests asynchronously with a bounded number of I/Os in flight.
// submit() completes an empty request at once and refuses (InvalidArgument, naming both sizes)
// one cut into units larger than the backend's staging buffers (its options' io_bytes); every
// other request goes to start().
class DiskBackend {
 public:
  explicit DiskBackend(std::size_t max_unit_bytes) : max_unit_bytes_(max_unit_bytes) {}
  virtual ~DiskBackend() = default;
  void submit(std::shared_ptr<DiskRequest> request);
  [[nodiscard]] virtual const char* name() const = 0;

 protected:
  virtual void start(std::shared_ptr<DiskRequest> request) = 0;
  const std::size_t max_unit_bytes_;
};

// io_uring when the kernel allows it, else pread/pwrite threads (with a log line saying why).
// options.backend is "auto", "io_uring" or "threads"; anything else is InvalidArgument.
[[nodiscard]] std::unique_ptr<DiskBackend> make_disk_backend(const DiskOptions& options);

}  // namespace kvbm
