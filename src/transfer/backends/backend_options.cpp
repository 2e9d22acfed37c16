#include "kvbm/transfer/backend_options.hpp"

#include "common/make_error.hpp"
#include "kvbm/memory/region.hpp"

namespace kvbm {
namespace {

void require(bool ok, std::string_view field, std::size_t value, std::string_view rule) {
  if (!ok) throw make_error(ErrorCode::InvalidArgument, "transfer config {}={} {}", field, value, rule);
}

std::size_t as_size(int value) { return value < 0 ? 0 : static_cast<std::size_t>(value); }

}  // namespace

std::string_view to_string(CudaCopyPath path) noexcept {
  switch (path) {
    case CudaCopyPath::Kernel: return "kernel";
    case CudaCopyPath::CopyEngine: return "copy_engine";
    case CudaCopyPath::Auto: return "auto";
  }
  return "kernel";
}

std::optional<CudaCopyPath> parse_cuda_copy_path(std::string_view name) noexcept {
  for (CudaCopyPath path : {CudaCopyPath::Kernel, CudaCopyPath::CopyEngine, CudaCopyPath::Auto}) {
    if (to_string(path) == name) return path;
  }
  return std::nullopt;
}

void CudaOptions::validate() const {
  require(copy_ctas > 0 && copy_ctas <= 1024, "cuda.copy_ctas", as_size(copy_ctas), "must be in [1, 1024]");
  require(copy_threads >= 32 && copy_threads <= 1024 && copy_threads % 32 == 0, "cuda.copy_threads", as_size(copy_threads),
          "must be a multiple of 32 in [32, 1024]");
  require(kernel_streams > 0 && kernel_streams <= 8, "cuda.kernel_streams", as_size(kernel_streams), "must be in [1, 8]");
  require(copy_engine_streams > 0 && copy_engine_streams <= 16, "cuda.copy_engine_streams", as_size(copy_engine_streams),
          "must be in [1, 16]");
  require(copy_engine_call_copies > 0, "cuda.copy_engine_call_copies", copy_engine_call_copies, "must be > 0");
  require(batch_bytes > 0, "cuda.batch_bytes", batch_bytes, "must be > 0");
  require(auto_copy_engine_bytes > 0, "cuda.auto_copy_engine_bytes", auto_copy_engine_bytes, "must be > 0");
  if (copy_path != CudaCopyPath::Kernel && copy_path != CudaCopyPath::CopyEngine && copy_path != CudaCopyPath::Auto) {
    throw make_error(ErrorCode::InvalidArgument, "transfer config cuda.copy_path={} is not a copy path",
                     static_cast<int>(copy_path));
  }
}

void DiskOptions::validate() const {
  if (backend != "auto" && backend != "io_uring" && backend != "threads") {
    throw make_error(ErrorCode::InvalidArgument, "transfer config disk.backend='{}' is not one of auto, io_uring, threads",
                     printable(backend));
  }
  require(queue_depth > 0 && queue_depth <= 4096, "disk.queue_depth", queue_depth, "must be in [1, 4096]");
  require(io_bytes > 0 && io_bytes % kDirectIoAlignment == 0, "disk.io_bytes", io_bytes,
          "must be a positive multiple of 4096");
  require(in_flight_bytes >= io_bytes, "disk.in_flight_bytes", in_flight_bytes, "must be at least disk.io_bytes");
}

}  // namespace kvbm
