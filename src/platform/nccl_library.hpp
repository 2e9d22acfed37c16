#pragma once
// libnccl, loaded at run time with dlopen: kvbm needs NCCL neither to build its other parts nor
// to run them, and replicated mode without it is an error saying so. The declarations come
// from the CUDA toolkit's nccl.h (built only where it is present).
#include <nccl.h>

#include <string>

namespace kvbm::nccl {

struct Library {
  // The library, or nullptr with `reason` saying why not. Loaded once per process.
  static const Library* get(std::string& reason);

  ncclResult_t (*get_unique_id)(ncclUniqueId*) = nullptr;
  ncclResult_t (*comm_init_rank_config)(ncclComm_t*, int, ncclUniqueId, int, ncclConfig_t*) = nullptr;
  ncclResult_t (*comm_abort)(ncclComm_t) = nullptr;
  ncclResult_t (*comm_destroy)(ncclComm_t) = nullptr;
  ncclResult_t (*comm_get_async_error)(ncclComm_t, ncclResult_t*) = nullptr;
  ncclResult_t (*broadcast)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*all_reduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*group_start)() = nullptr;
  ncclResult_t (*group_end)() = nullptr;
  const char* (*get_error_string)(ncclResult_t) = nullptr;
  std::string path;
};

}  // namespace kvbm::nccl
