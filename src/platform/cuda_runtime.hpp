#pragma once
// kvbm's internal door to the CUDA runtime. Built against cudart when CUDA was found at
// configure time (cuda_runtime.cpp), otherwise every call fails with "built without CUDA"
// (cuda_runtime_none.cpp). Public headers never include CUDA's.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kvbm::cuda {

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  std::size_t total_memory = 0;
  int pci_bus = 0;
  int pci_device = 0;
  int pcie_generation = 0;  // 0 when unknown
  int pcie_width = 0;       // 0 when unknown
  int sm_count = 0;
  int compute_major = 0;
  int compute_minor = 0;
};

// Whether kvbm was built with CUDA support at all.
[[nodiscard]] bool built_with_cuda();
// Number of usable devices; 0 when there is no driver or no device (never throws).
[[nodiscard]] int device_count();
// Why device_count() is 0, for messages ("no CUDA-capable device is detected").
[[nodiscard]] std::string unavailable_reason();
// Throws Unsupported when no device exists, OutOfRange when the ordinal is past the last one.
void require_device(std::uint32_t ordinal);
[[nodiscard]] std::vector<DeviceInfo> devices();

[[nodiscard]] void* host_alloc(std::size_t bytes);
void host_free(void* ptr) noexcept;
[[nodiscard]] void* device_alloc(std::uint32_t ordinal, std::size_t bytes);
void device_free(std::uint32_t ordinal, void* ptr) noexcept;
void host_register(void* ptr, std::size_t bytes);
void host_unregister(void* ptr) noexcept;

// Synchronous copies for set-up and verification (not the transfer hot path).
void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes);
void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes);

// Bench references on a fresh stream: one contiguous cudaMemcpyAsync, timed with CUDA events
// (the ceiling), and one plain cudaMemcpyBatchAsync over a list of copies, timed by wall clock
// from the call to the end of the copies like kvbm's own figure (the copy-engine baseline).
[[nodiscard]] double timed_memcpy_seconds(void* dst, const void* src, std::size_t bytes);
[[nodiscard]] double timed_batch_seconds(const std::vector<void*>& dsts, const std::vector<const void*>& srcs,
                                         const std::vector<std::size_t>& sizes);

enum class PointerType { Unregistered, Host, Device, Managed };
struct PointerInfo {
  PointerType type = PointerType::Unregistered;
  int device = -1;
};
[[nodiscard]] PointerInfo pointer_info(const void* ptr);

}  // namespace kvbm::cuda
