#include "bench_tuning.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>
#include <map>

#include "common/make_error.hpp"
#include "kvbm/common/settings.hpp"

namespace kvbm::tools {
namespace {

using Setter = std::function<void(TransferConfig&, const std::string& key, const std::string& value)>;

Setter size_field(std::size_t TransferConfig::*field) {
  return [field](TransferConfig& config, const std::string& key, const std::string& value) {
    config.*field = settings::parse_size(key, value);
  };
}

template <typename Options, typename Value>
Setter nested(Options TransferConfig::*options, Value Options::*field) {
  return [options, field](TransferConfig& config, const std::string& key, const std::string& value) {
    if constexpr (std::is_same_v<Value, bool>) {
      config.*options.*field = settings::parse_bool(key, value);
    } else {
      config.*options.*field = static_cast<Value>(settings::parse_size(key, value));
    }
  };
}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      {"memcpy_parallel_bytes", size_field(&TransferConfig::memcpy_parallel_bytes)},
      {"disk.io_bytes", nested(&TransferConfig::disk, &DiskOptions::io_bytes)},
      {"disk.in_flight_bytes", nested(&TransferConfig::disk, &DiskOptions::in_flight_bytes)},
      {"cuda.batch_bytes", nested(&TransferConfig::cuda, &CudaOptions::batch_bytes)},
      {"cuda.copy_threads", nested(&TransferConfig::cuda, &CudaOptions::copy_threads)},
      {"cuda.kernel_streams", nested(&TransferConfig::cuda, &CudaOptions::kernel_streams)},
      {"cuda.upload_descriptors", nested(&TransferConfig::cuda, &CudaOptions::upload_descriptors)},
      {"cuda.block_kernel", nested(&TransferConfig::cuda, &CudaOptions::block_kernel)},
      {"cuda.ramp_device_batches", nested(&TransferConfig::cuda, &CudaOptions::ramp_device_batches)},
      {"cuda.upload_device_descriptors", nested(&TransferConfig::cuda, &CudaOptions::upload_device_descriptors)},
      {"cuda.copy_engine_streams", nested(&TransferConfig::cuda, &CudaOptions::copy_engine_streams)},
      {"cuda.copy_engine_call_copies", nested(&TransferConfig::cuda, &CudaOptions::copy_engine_call_copies)},
      {"cuda.auto_copy_engine_bytes", nested(&TransferConfig::cuda, &CudaOptions::auto_copy_engine_bytes)},
  };
  return table;
}

}  // namespace

std::vector<std::string> tuning_keys() {
  std::vector<std::string> keys;
  for (const auto& [key, setter] : setters()) keys.push_back(key);
  return keys;
}

void apply_tuning(TransferConfig& config, const std::string& assignment) {
  const auto equals = assignment.find('=');
  const std::string key = assignment.substr(0, equals);
  const auto found = setters().find(key);
  if (equals == std::string::npos || found == setters().end()) {
    throw make_error(ErrorCode::InvalidArgument, "--tune '{}': expected KEY=VALUE with KEY one of {}", printable(assignment),
                     fmt::join(tuning_keys(), ", "));
  }
  found->second(config, "--tune " + key, assignment.substr(equals + 1));
}

}  // namespace kvbm::tools
