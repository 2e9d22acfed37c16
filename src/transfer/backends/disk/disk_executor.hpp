#pragma once
// The disk backend behind the executor interface: each submission of copy ops between host
// memory and disk files becomes one DiskRequest of I/Os of at most `io_bytes`.
#include <cstddef>

#include "transfer/backends/disk/disk_request.hpp"
#include "transfer/engine/copy_op.hpp"

namespace kvbm {

class DiskExecutor final : public Executor {
 public:
  DiskExecutor(DiskBackend& backend, std::size_t io_bytes) : backend_(backend), io_bytes_(io_bytes) {}
  void submit(CopyOps ops, DoneCallback done) override {
    backend_.submit(std::make_shared<DiskRequest>(ops, io_bytes_, std::move(done)));
  }

 private:
  DiskBackend& backend_;
  std::size_t io_bytes_;
};

}  // namespace kvbm
