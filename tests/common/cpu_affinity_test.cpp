// Pinning a thread to one CPU and giving it back its former CPUs; CPUs the process may not use.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include "common/cpu_affinity.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {
namespace {

cpu_set_t thread_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(pthread_getaffinity_np(pthread_self(), sizeof set, &set), 0);
  return set;
}

TEST(CpuAffinity, PinsToEachUsableCpuAndRestores) {
  const cpu_set_t before = thread_cpus();
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &before)) continue;
    require_usable_cpu(cpu);
    {
      const ScopedThreadCpu pinned(cpu);
      const cpu_set_t now = thread_cpus();
      EXPECT_EQ(CPU_COUNT(&now), 1);
      EXPECT_TRUE(CPU_ISSET(cpu, &now));
      EXPECT_EQ(sched_getcpu(), cpu);
    }
    cpu_set_t after = thread_cpus();
    EXPECT_TRUE(CPU_EQUAL(&after, &before)) << "CPU " << cpu;
  }
  const ScopedThreadCpu unpinned(std::nullopt);
  cpu_set_t after = thread_cpus();
  EXPECT_TRUE(CPU_EQUAL(&after, &before));
}

TEST(CpuAffinity, CpusOutsideTheProcessAreNamed) {
  const cpu_set_t before = thread_cpus();
  for (int cpu : {-1, CPU_SETSIZE, 1 << 20}) {
    try {
      require_usable_cpu(cpu);
      ADD_FAILURE() << "CPU " << cpu << " was accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(error.message().find("CPU " + std::to_string(cpu) + " "), std::string::npos) << error.message();
    }
    EXPECT_THROW(ScopedThreadCpu pinned(cpu), Error) << cpu;
    cpu_set_t after = thread_cpus();
    EXPECT_TRUE(CPU_EQUAL(&after, &before)) << "a refused pin changed the thread's CPUs";
  }
}

}  // namespace
}  // namespace kvbm
