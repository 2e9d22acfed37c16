#include "transfer/backends/cuda/stream_progress.hpp"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <atomic>

namespace kvbm::cuda {
namespace {

auto as_write(void* entry) { return reinterpret_cast<PFN_cuStreamWriteValue64_v11070>(entry); }

CUdeviceptr device_address(std::uint64_t* word) { return static_cast<CUdeviceptr>(reinterpret_cast<std::uintptr_t>(word)); }

// The driver's cuStreamWriteValue64, looked up once for every executor's streams; nullptr
// where the driver has none.
void* write_entry() {
  static void* const entry = [] {
    void* found_entry = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuStreamWriteValue64", &found_entry, 11070, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<void*>(nullptr);
    }
    return found_entry;
  }();
  return entry;
}

}  // namespace

std::unique_ptr<StreamProgress> StreamProgress::create(cudaStream_t stream) {
  void* entry = write_entry();
  if (entry == nullptr) return nullptr;
  void* memory = nullptr;
  if (cudaHostAlloc(&memory, sizeof(std::uint64_t), cudaHostAllocPortable | cudaHostAllocMapped) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  auto* word = static_cast<std::uint64_t*>(memory);
  *word = 0;
  // The count of a signalling kernel's CTAs, zeroed on the stream its kernels will run on (a
  // non-blocking stream is not ordered after the default stream's work).
  void* arrivals = nullptr;
  const bool counted = cudaMalloc(&arrivals, sizeof(std::uint32_t)) == cudaSuccess &&
                       cudaMemsetAsync(arrivals, 0, sizeof(std::uint32_t), stream) == cudaSuccess;
  // One real write, waited for: some drivers and devices refuse stream memory operations,
  // and with UVA a mapped host pointer is also its device address (checked here, not assumed).
  void* device_pointer = nullptr;
  const bool usable = counted && cudaHostGetDevicePointer(&device_pointer, memory, 0) == cudaSuccess &&
                      device_pointer == memory &&
                      as_write(entry)(reinterpret_cast<CUstream>(stream), device_address(word), 1, 0) == CUDA_SUCCESS &&
                      cudaStreamSynchronize(stream) == cudaSuccess &&
                      std::atomic_ref<std::uint64_t>(*word).load(std::memory_order_acquire) == 1;
  if (!usable) {
    cudaGetLastError();
    cudaFree(arrivals);
    cudaFreeHost(memory);
    return nullptr;
  }
  return std::unique_ptr<StreamProgress>(new StreamProgress(word, static_cast<std::uint32_t*>(arrivals), entry, 1));
}

StreamProgress::~StreamProgress() {
  cudaFree(arrivals_);
  cudaFreeHost(word_);
}

std::uint64_t StreamProgress::advance(cudaStream_t stream) {
  const std::uint64_t number = next_ + 1;
  if (as_write(write_)(reinterpret_cast<CUstream>(stream), device_address(word_), number, 0) != CUDA_SUCCESS) return 0;
  next_ = number;
  return number;
}

bool StreamProgress::reached(std::uint64_t number) const {
  return std::atomic_ref<std::uint64_t>(*word_).load(std::memory_order_acquire) >= number;
}

}  // namespace kvbm::cuda
