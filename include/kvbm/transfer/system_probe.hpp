#pragma once
// What this machine offers kvbm, checked by trying it: used by `kvbm info` and by tests that
// must skip where a facility is missing.
#include <string>

namespace kvbm {

struct ProbeResult {
  bool usable = false;
  std::string detail;  // what was found, or why it is unusable
};

[[nodiscard]] ProbeResult probe_pinned_memory();
[[nodiscard]] ProbeResult probe_io_uring();
[[nodiscard]] ProbeResult probe_o_direct(const std::string& directory);

}  // namespace kvbm
