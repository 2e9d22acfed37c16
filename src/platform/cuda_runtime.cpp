#include "platform/cuda_runtime.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>

#include "platform/cuda_check.hpp"
#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm::cuda {
namespace {

// Reads the PCIe link of a device from sysfs ("16.0 GT/s PCIe" -> generation 4; width "16").
void read_pcie_link(DeviceInfo& info, int ordinal) {
  char bus_id[32] = {};
  if (cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, ordinal) != cudaSuccess) return;
  std::string id(bus_id);
  std::transform(id.begin(), id.end(), id.begin(), [](unsigned char c) { return std::tolower(c); });
  const std::string base = "/sys/bus/pci/devices/" + id + "/";
  std::ifstream speed(base + "current_link_speed");
  double gts = 0;
  if (speed >> gts) {
    // Transfer rate per generation: 2.5, 5, 8, 16, 32, 64 GT/s.
    static constexpr double kRates[] = {2.5, 5, 8, 16, 32, 64};
    for (int gen = 0; gen < 6; ++gen) {
      if (gts >= kRates[gen] - 0.1) info.pcie_generation = gen + 1;
    }
  }
  std::ifstream width(base + "current_link_width");
  width >> info.pcie_width;
}

}  // namespace

bool built_with_cuda() { return true; }

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" state so later calls are not confused
    return 0;
  }
  return count;
}

std::string unavailable_reason() {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  cudaGetLastError();
  if (status != cudaSuccess) return cudaGetErrorString(status);
  if (count == 0) return "no CUDA device present";
  return "";
}

void require_device(std::uint32_t ordinal) {
  const int count = device_count();
  if (count == 0) {
    throw make_error(ErrorCode::Unsupported, "no CUDA device available: {}", unavailable_reason());
  }
  if (ordinal >= static_cast<std::uint32_t>(count)) {
    throw make_error(ErrorCode::OutOfRange, "CUDA device ordinal {} does not exist (this machine has {})",
                     ordinal, count);
  }
}

std::vector<DeviceInfo> devices() {
  std::vector<DeviceInfo> result;
  for (int ordinal = 0; ordinal < device_count(); ++ordinal) {
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, ordinal), "cudaGetDeviceProperties");
    DeviceInfo info;
    info.ordinal = ordinal;
    info.name = prop.name;
    info.total_memory = prop.totalGlobalMem;
    info.pci_bus = prop.pciBusID;
    info.pci_device = prop.pciDeviceID;
    info.sm_count = prop.multiProcessorCount;
    info.compute_major = prop.major;
    info.compute_minor = prop.minor;
    read_pcie_link(info, ordinal);
    result.push_back(info);
  }
  return result;
}

void* host_alloc(std::size_t bytes) {
  require_device(0);
  void* ptr = nullptr;
  check(cudaHostAlloc(&ptr, bytes, cudaHostAllocPortable), fmt::format("cudaHostAlloc of {} bytes", bytes));
  return ptr;
}

void host_free(void* ptr) noexcept { cudaFreeHost(ptr); }

void* device_alloc(std::uint32_t ordinal, std::size_t bytes) {
  require_device(ordinal);
  DeviceGuard guard(static_cast<int>(ordinal));
  void* ptr = nullptr;
  check(cudaMalloc(&ptr, bytes), fmt::format("cudaMalloc of {} bytes on device {}", bytes, ordinal));
  return ptr;
}

void device_free(std::uint32_t ordinal, void* ptr) noexcept {
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(static_cast<int>(ordinal));
  cudaFree(ptr);
  cudaSetDevice(previous);
}

void host_register(void* ptr, std::size_t bytes) {
  require_device(0);
  check(cudaHostRegister(ptr, bytes, cudaHostRegisterPortable),
        fmt::format("cudaHostRegister of {} bytes at {}", bytes, ptr));
}

void host_unregister(void* ptr) noexcept { cudaHostUnregister(ptr); }

void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) {
  check(cudaMemcpy(device_dst, host_src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy host to device");
}

void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) {
  check(cudaMemcpy(host_dst, device_src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy device to host");
}

namespace {
// Runs `enqueue` on a fresh stream between two events and returns the seconds between them.
template <typename Enqueue>
double event_timed(Enqueue&& enqueue) {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  check(cudaEventRecord(start, stream), "cudaEventRecord");
  enqueue(stream);
  check(cudaEventRecord(stop, stream), "cudaEventRecord");
  check(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return ms / 1e3;
}
}  // namespace

double timed_memcpy_seconds(void* dst, const void* src, std::size_t bytes) {
  return event_timed([&](cudaStream_t stream) {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream), "cudaMemcpyAsync (ceiling)");
  });
}

double timed_batch_seconds(const std::vector<void*>& dsts, const std::vector<const void*>& srcs,
                           const std::vector<std::size_t>& sizes) {
  // Wall clock from the call to the end of the copies, as kvbm's own figure is taken: with many
  // small copies the call itself takes as long as the copies, and GPU events would not see it.
  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  cudaMemcpyAttributes attributes{};
  attributes.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
  std::size_t index = 0;
  const auto start = std::chrono::steady_clock::now();
  check(cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), dsts.size(), &attributes, &index, 1, stream),
        "cudaMemcpyBatchAsync (baseline)");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (baseline)");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  cudaStreamDestroy(stream);
  return seconds;
}

PointerInfo pointer_info(const void* ptr) {
  if (device_count() == 0) return {};
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, ptr) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  PointerInfo info;
  info.device = attributes.device;
  switch (attributes.type) {
    case cudaMemoryTypeHost: info.type = PointerType::Host; break;
    case cudaMemoryTypeDevice: info.type = PointerType::Device; break;
    case cudaMemoryTypeManaged: info.type = PointerType::Managed; break;
    default: info.type = PointerType::Unregistered; break;
  }
  return info;
}

}  // namespace kvbm::cuda
