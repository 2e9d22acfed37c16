#include "transfer/backends/gds/gds_executor.hpp"

namespace kvbm {

std::unique_ptr<Executor> make_gds_executor(std::size_t, std::size_t, FallbackRunner, const std::string&,
                                            std::string& reason) {
  reason = "kvbm was built without CUDA";
  return nullptr;
}

}  // namespace kvbm
