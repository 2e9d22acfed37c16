#include "transfer/backends/gds/cufile_library.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "common/logger.hpp"

namespace kvbm::gds {
namespace {

template <typename Fn>
bool resolve(void* library, const char* name, Fn& slot, std::string& reason) {
  slot = reinterpret_cast<Fn>(dlsym(library, name));
  if (!slot) reason = fmt::format("libcufile has no symbol {}", name);
  return slot != nullptr;
}

CuFileLibrary* load(const std::string& preferred, std::string& reason) {
  // `preferred` names a library to use instead; else the loader's search path, then the CUDA
  // toolkit's default location.
  std::vector<std::string> candidates{"libcufile.so.0", "/usr/local/cuda/lib64/libcufile.so.0"};
  if (!preferred.empty()) candidates.insert(candidates.begin(), preferred);
  void* library = nullptr;
  std::string path;
  for (const std::string& candidate : candidates) {
    library = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library) {
      path = candidate;
      break;
    }
    reason = fmt::format("cannot load libcufile: {}", dlerror());
  }
  if (!library) return nullptr;

  static CuFileLibrary instance;
  CuFileError (*driver_open)() = nullptr;
  if (!resolve(library, "cuFileDriverOpen", driver_open, reason) ||
      !resolve(library, "cuFileHandleRegister", instance.handle_register, reason) ||
      !resolve(library, "cuFileHandleDeregister", instance.handle_deregister, reason) ||
      !resolve(library, "cuFileRead", instance.read, reason) || !resolve(library, "cuFileWrite", instance.write, reason)) {
    return nullptr;
  }
  const CuFileError opened = driver_open();
  if (opened.err != 0) {
    reason = fmt::format("cuFileDriverOpen failed: {} (CUresult {})", describe_error(opened.err), opened.cu_err);
    return nullptr;
  }
  // The driver stays open for the life of the process: closing it while another context may
  // still use it would buy nothing.
  instance.path = path;
  instance.kernel_driver = ::access("/proc/driver/nvidia-fs/stats", F_OK) == 0;
  log().info("GPUDirect Storage through {} ({})", path,
             instance.kernel_driver ? "nvidia-fs present" : "no nvidia-fs: compatibility mode through host memory");
  return &instance;
}

}  // namespace

CuFileLibrary* CuFileLibrary::get(const std::string& preferred, std::string& reason) {
  static std::once_flag once;
  static CuFileLibrary* library = nullptr;
  static std::string failure;
  std::call_once(once, [&] { library = load(preferred, failure); });
  reason = failure;
  return library;
}

std::string describe_error(int op_error) {
  // The library exports no error-string function (cufile.h's is inline), so name the code.
  return fmt::format("cuFile error {} (a CUfileOpError of cufile.h)", op_error < 0 ? -op_error : op_error);
}

}  // namespace kvbm::gds
