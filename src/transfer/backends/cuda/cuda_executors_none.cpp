// Built without CUDA: GPU transfer paths report that they are unavailable.
#include "common/make_error.hpp"
#include "transfer/backends/cuda/cuda_executors.hpp"

namespace kvbm {
namespace {

class NoCudaExecutors final : public CudaExecutors {
 public:
  CudaExecutor& executor(StorageKind src, StorageKind dst) override {
    throw make_error(ErrorCode::Unsupported, "transfer {} -> {} needs CUDA, and kvbm was built without it",
                     src.to_string(), dst.to_string());
  }
};

}  // namespace

std::unique_ptr<CudaExecutors> make_cuda_executors(const CudaOptions&, const SpinBudgets&) {
  return std::make_unique<NoCudaExecutors>();
}

}  // namespace kvbm
