#include "common/cpu_affinity.hpp"

#include <pthread.h>
#include <unistd.h>

#include <thread>

#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {
namespace {

bool pin_calling_thread(int cpu) {
  cpu_set_t only;
  CPU_ZERO(&only);
  CPU_SET(cpu, &only);
  return pthread_setaffinity_np(pthread_self(), sizeof only, &only) == 0;
}

}  // namespace

std::vector<int> calling_thread_cpus() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (pthread_getaffinity_np(pthread_self(), sizeof allowed, &allowed) != 0) {
    throw make_error(ErrorCode::Io, "cannot read the calling thread's CPUs (pthread_getaffinity_np)");
  }
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  }
  return cpus;
}

void require_usable_cpu(int cpu) {
  // Tried on a thread of its own: what limits pinning is the process's cgroup and the CPUs
  // online, not the CPUs the calling thread happens to be pinned to.
  bool usable = false;
  if (cpu >= 0 && cpu < CPU_SETSIZE) std::thread([&] { usable = pin_calling_thread(cpu); }).join();
  if (!usable) {
    throw make_error(ErrorCode::InvalidArgument, "CPU {} is not one this process may run on ({} CPUs online)", cpu,
                     sysconf(_SC_NPROCESSORS_ONLN));
  }
}

ScopedThreadCpu::ScopedThreadCpu(std::optional<int> cpu) {
  if (!cpu) return;
  CPU_ZERO(&previous_);
  if (pthread_getaffinity_np(pthread_self(), sizeof previous_, &previous_) != 0) {
    throw make_error(ErrorCode::Io, "cannot read the calling thread's CPUs before pinning it to CPU {}", *cpu);
  }
  if (*cpu < 0 || *cpu >= CPU_SETSIZE || !pin_calling_thread(*cpu)) {
    throw make_error(ErrorCode::InvalidArgument, "cannot pin the calling thread to CPU {} ({} CPUs online)", *cpu,
                     sysconf(_SC_NPROCESSORS_ONLN));
  }
  pinned_ = true;
}

ScopedThreadCpu::~ScopedThreadCpu() {
  if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof previous_, &previous_);
}

}  // namespace kvbm
