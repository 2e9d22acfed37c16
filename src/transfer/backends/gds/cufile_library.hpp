#pragma once
// libcufile (GPUDirect Storage), loaded at run time with dlopen: kvbm never needs it to build
// or to run, and a context without it plans device <-> disk as a two-hop through pinned memory.
// The few declarations below follow the documented cuFile C API (cufile.h), which the build
// machine does not have.
#include <sys/types.h>

#include <cstddef>
#include <string>

namespace kvbm::gds {

struct CuFileError {
  int err;     // CUfileOpError: 0 is success
  int cu_err;  // CUresult, when err says a CUDA driver call failed
};

struct CuFileDescriptor {
  int type;  // CU_FILE_HANDLE_TYPE_OPAQUE_FD = 1
  union {
    int fd;
    void* handle;
  } handle;
  const void* fs_ops;
};

using CuFileHandle = void*;

class CuFileLibrary {
 public:
  // The library with its driver open, or nullptr with `reason` saying why not (no library,
  // a missing symbol, or cuFileDriverOpen failing, e.g. without a GPU). Loaded once per
  // process, from `preferred` when that is not empty (the first caller's choice holds).
  static CuFileLibrary* get(const std::string& preferred, std::string& reason);

  CuFileError (*handle_register)(CuFileHandle* handle, CuFileDescriptor* descriptor) = nullptr;
  void (*handle_deregister)(CuFileHandle handle) = nullptr;
  ssize_t (*read)(CuFileHandle handle, void* device_base, std::size_t size, off_t file_offset,
                  off_t device_offset) = nullptr;
  ssize_t (*write)(CuFileHandle handle, const void* device_base, std::size_t size, off_t file_offset,
                   off_t device_offset) = nullptr;

  // Where it was loaded from, and whether the nvidia-fs kernel driver (true GPUDirect) is
  // present; without it cuFile runs in compatibility mode through host memory.
  std::string path;
  bool kernel_driver = false;
};

// Names a CUfileOpError, or the negated one a failed cuFileRead/Write returns.
[[nodiscard]] std::string describe_error(int op_error);

}  // namespace kvbm::gds
