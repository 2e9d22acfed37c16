// kvbm built without CUDA: every CUDA request fails with an error that says so.
#include "platform/cuda_runtime.hpp"
#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm::cuda {
namespace {
[[noreturn]] void fail(std::string_view what) {
  throw make_error(ErrorCode::Unsupported, "{}: kvbm was built without CUDA (nvcc was not found at configure time)",
                   what);
}
}  // namespace

bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string unavailable_reason() { return "kvbm was built without CUDA"; }
void require_device(std::uint32_t ordinal) { fail(fmt::format("CUDA device {}", ordinal)); }
std::vector<DeviceInfo> devices() { return {}; }
void* host_alloc(std::size_t) { fail("pinned host allocation"); }
void host_free(void*) noexcept {}
void* device_alloc(std::uint32_t ordinal, std::size_t) { fail(fmt::format("allocation on device {}", ordinal)); }
void device_free(std::uint32_t, void*) noexcept {}
void host_register(void*, std::size_t) { fail("cudaHostRegister"); }
void host_unregister(void*) noexcept {}
void copy_to_device(void*, const void*, std::size_t) { fail("copy to device"); }
void copy_to_host(void*, const void*, std::size_t) { fail("copy to host"); }
double timed_memcpy_seconds(void*, const void*, std::size_t) { fail("timed cudaMemcpyAsync"); }
double timed_batch_seconds(const std::vector<void*>&, const std::vector<const void*>&, const std::vector<std::size_t>&) {
  fail("timed cudaMemcpyBatchAsync");
}
PointerInfo pointer_info(const void*) { return {}; }

}  // namespace kvbm::cuda
