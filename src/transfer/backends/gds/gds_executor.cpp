#include "transfer/backends/gds/gds_executor.hpp"

#include <atomic>
#include <cerrno>
#include <map>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "common/thread_pool.hpp"
#include "platform/cuda_check.hpp"
#include "transfer/backends/gds/cufile_library.hpp"
#include "transfer/engine/join.hpp"

namespace kvbm {
namespace {

using gds::CuFileLibrary;

// cuFile handles for the files of one batch, registered before its I/O and released after:
// a handle kept longer could outlive its file, and a reused descriptor number would then
// reach the wrong file.
class FileHandles {
 public:
  FileHandles(CuFileLibrary& library, const CopyOps& ops) : library_(library) {
    for (const CopyOp& op : ops) {
      const Region* file = op.src.region->kind().is_disk() ? op.src.region : op.dst.region;
      if (handles_.count(file)) continue;
      gds::CuFileDescriptor descriptor{};
      descriptor.type = 1;  // CU_FILE_HANDLE_TYPE_OPAQUE_FD
      descriptor.handle.fd = file->fd();
      gds::CuFileHandle handle = nullptr;
      const gds::CuFileError result = library_.handle_register(&handle, &descriptor);
      if (result.err != 0) {
        throw make_error(ErrorCode::Io, "cuFileHandleRegister({}) failed: {} (CUresult {})", file->path(),
                         gds::describe_error(result.err), result.cu_err);
      }
      handles_.emplace(file, handle);
    }
  }
  ~FileHandles() {
    for (auto& [file, handle] : handles_) library_.handle_deregister(handle);
  }
  FileHandles(const FileHandles&) = delete;
  FileHandles& operator=(const FileHandles&) = delete;

  [[nodiscard]] gds::CuFileHandle of(const Region* file) const { return handles_.at(file); }

 private:
  CuFileLibrary& library_;
  std::map<const Region*, gds::CuFileHandle> handles_;
};

class GdsExecutor final : public Executor {
 public:
  GdsExecutor(CuFileLibrary& library, std::size_t threads, std::size_t piece_bytes, FallbackRunner fallback)
      : library_(library), piece_bytes_(piece_bytes), fallback_(std::move(fallback)), pool_(threads) {}

  void submit(CopyOps ops, DoneCallback done) override {
    if (refused_.load()) return fallback_(std::move(ops), std::move(done));
    std::shared_ptr<FileHandles> handles;
    try {
      handles = std::make_shared<FileHandles>(library_, ops);
    } catch (const Error& error) {
      if (!refused_.exchange(true)) {
        log().warn("GPUDirect Storage refused a file ({}); device <-> disk goes through pinned memory from now on",
                   error.message());
      }
      return fallback_(std::move(ops), std::move(done));
    }
    // The join owns the handles and releases them when the last piece has finished, before
    // `done` runs (which may let the files close); the pieces only borrow them.
    const FileHandles* borrowed = handles.get();
    auto release_then_done = [handles = std::move(handles), done = std::move(done)](Status status) mutable {
      handles.reset();
      done(std::move(status));
    };
    auto join = Join::make(count_pieces(ops, piece_bytes_), std::move(release_then_done));
    for_each_piece(ops, piece_bytes_, [&](const CopyOp& piece) {
      pool_.post([this, piece, borrowed, join] {
        if (join->failed()) return join->arrive(Status{});  // an earlier piece failed: skip the I/O
        join->arrive(run_piece(piece, *borrowed));
      });
    });
  }

 private:
  Status run_piece(const CopyOp& piece, const FileHandles& handles) {
    const bool write = piece.dst.region->kind().is_disk();
    const Location& file = write ? piece.dst : piece.src;
    const Location& memory = write ? piece.src : piece.dst;
    const std::size_t bytes = piece.bytes;
    try {
      cuda::DeviceGuard guard(static_cast<int>(memory.region->kind().index()));
      const auto file_offset = static_cast<off_t>(file.offset);
      std::byte* device = memory.address();
      const ssize_t moved = write ? library_.write(handles.of(file.region), device, bytes, file_offset, 0)
                                  : library_.read(handles.of(file.region), device, bytes, file_offset, 0);
      if (moved == -1) return errno_error(write ? "cuFileWrite" : "cuFileRead", file.region->path(), errno);
      if (moved < 0) {
        return make_error(ErrorCode::Io, "{} of {} bytes at offset {} of {} failed: {}", write ? "cuFileWrite" : "cuFileRead",
                          bytes, file_offset, file.region->path(), gds::describe_error(static_cast<int>(moved)));
      }
      if (static_cast<std::size_t>(moved) != bytes) {
        return make_error(ErrorCode::Io, "{} moved {} of {} bytes at offset {} of {} (file too short?)",
                          write ? "cuFileWrite" : "cuFileRead", moved, bytes, file_offset, file.region->path());
      }
      return {};
    } catch (const Error& error) {
      return error;
    }
  }

  CuFileLibrary& library_;
  std::size_t piece_bytes_;
  FallbackRunner fallback_;
  std::atomic<bool> refused_{false};
  ThreadPool pool_;  // last: joined first, while the rest is still alive
};

}  // namespace

std::unique_ptr<Executor> make_gds_executor(std::size_t threads, std::size_t piece_bytes, FallbackRunner fallback,
                                            const std::string& library_path, std::string& reason) {
  CuFileLibrary* library = CuFileLibrary::get(library_path, reason);
  if (!library) return nullptr;
  return std::make_unique<GdsExecutor>(*library, threads, piece_bytes, std::move(fallback));
}

}  // namespace kvbm
