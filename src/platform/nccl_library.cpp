#include "platform/nccl_library.hpp"

#include <dlfcn.h>

#include <mutex>

#include <fmt/format.h>

namespace kvbm::nccl {
namespace {

template <typename Fn>
bool resolve(void* library, const char* name, Fn& slot, std::string& reason) {
  slot = reinterpret_cast<Fn>(dlsym(library, name));
  if (!slot) reason = fmt::format("libnccl has no symbol {}", name);
  return slot != nullptr;
}

}  // namespace

const Library* Library::get(std::string& reason) {
  static std::once_flag once;
  static Library instance;
  static const Library* loaded = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    // The loader's search path first (the GPU machine has NCCL only in PyTorch's environment,
    // which the bundle's env.sh puts there), then the CUDA toolkit's.
    for (const char* candidate : {"libnccl.so.2", "/usr/local/cuda/lib64/libnccl.so.2"}) {
      void* library = dlopen(candidate, RTLD_NOW | RTLD_LOCAL);
      if (!library) {
        failure = fmt::format("cannot load libnccl.so.2: {}", dlerror());
        continue;
      }
      if (resolve(library, "ncclGetUniqueId", instance.get_unique_id, failure) &&
          resolve(library, "ncclCommInitRankConfig", instance.comm_init_rank_config, failure) &&
          resolve(library, "ncclCommAbort", instance.comm_abort, failure) &&
          resolve(library, "ncclCommDestroy", instance.comm_destroy, failure) &&
          resolve(library, "ncclCommGetAsyncError", instance.comm_get_async_error, failure) &&
          resolve(library, "ncclBroadcast", instance.broadcast, failure) &&
          resolve(library, "ncclAllReduce", instance.all_reduce, failure) &&
          resolve(library, "ncclGroupStart", instance.group_start, failure) &&
          resolve(library, "ncclGroupEnd", instance.group_end, failure) &&
          resolve(library, "ncclGetErrorString", instance.get_error_string, failure)) {
        instance.path = candidate;
        loaded = &instance;
        return;
      }
    }
  });
  if (!loaded) reason = failure;
  return loaded;
}

}  // namespace kvbm::nccl
