#pragma once
// Keeping a messaging endpoint's threads on one CPU. On the VMs kvbm was measured on, waking a
// thread whose CPU is idle costs far more than switching to it on a CPU that is already
// running: a ZeroMQ round trip wakes each context's I/O thread twice, and with the I/O thread on
// the CPU where the endpoint's receive loop polls, those wake-ups become local switches
// (raw PUB/SUB + PUSH/PULL echo on the H100 machine, 2 workers: 60-66 us against 76-95 us).
#include <sched.h>

#include <optional>
#include <vector>

namespace kvbm {

// The CPUs the calling thread may run on, in order. Throws Io when they cannot be read.
[[nodiscard]] std::vector<int> calling_thread_cpus();

// Throws InvalidArgument naming `cpu` when this process may not run on it.
void require_usable_cpu(int cpu);

// Pins the constructing thread to `cpu` (when set) and gives it back its former CPUs when
// destroyed. Throws like require_usable_cpu.
class ScopedThreadCpu {
 public:
  explicit ScopedThreadCpu(std::optional<int> cpu);
  ~ScopedThreadCpu();
  ScopedThreadCpu(const ScopedThreadCpu&) = delete;
  ScopedThreadCpu& operator=(const ScopedThreadCpu&) = delete;

 private:
  bool pinned_ = false;
  cpu_set_t previous_{};
};

}  // namespace kvbm
