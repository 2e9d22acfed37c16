// Seed 003's unit tests, one for one, plus the error cases of the remote rules.
#include "kvbm/transfer/strategy.hpp"

#include <gtest/gtest.h>

#include "kvbm/common/error.hpp"

namespace kvbm {
namespace {
using S = TransferStrategy;
const StorageKind System = StorageKind::system();
const StorageKind Pinned = StorageKind::pinned();
StorageKind Device(std::uint32_t n) { return StorageKind::device(n); }
StorageKind Disk(std::uint32_t n) { return StorageKind::disk(n); }
TransferPlan Direct(S strategy) { return DirectPlan{strategy}; }
TransferPlan TwoHop(S first, S second) { return TwoHopPlan{first, Pinned, second}; }
const TransferCapabilities caps{};
}  // namespace

TEST(Strategy, HostToHost) {
  EXPECT_EQ(select_direct_strategy(System, System, false, caps), Direct(S::Memcpy));
  EXPECT_EQ(select_direct_strategy(System, Pinned, false, caps), Direct(S::Memcpy));
  EXPECT_EQ(select_direct_strategy(Pinned, System, false, caps), Direct(S::Memcpy));
  EXPECT_EQ(select_direct_strategy(Pinned, Pinned, false, caps), Direct(S::Memcpy));
}

TEST(Strategy, HostToDevice) {
  EXPECT_EQ(select_direct_strategy(System, Device(0), false, caps), Direct(S::CudaBlockingH2D));
  EXPECT_EQ(select_direct_strategy(Pinned, Device(0), false, caps), Direct(S::CudaAsyncH2D));
}

TEST(Strategy, DeviceToHost) {
  EXPECT_EQ(select_direct_strategy(Device(0), System, false, caps), Direct(S::CudaBlockingD2H));
  EXPECT_EQ(select_direct_strategy(Device(0), Pinned, false, caps), Direct(S::CudaAsyncD2H));
}

// What the engine runs: the blocking copies as two hops through pinned memory, the rest as chosen.
TEST(Strategy, ExecutionPlanNamesTheTwoHopsOfBlockingCopies) {
  EXPECT_EQ(execution_plan(Direct(S::CudaBlockingH2D)), TwoHop(S::Memcpy, S::CudaAsyncH2D));
  EXPECT_EQ(execution_plan(Direct(S::CudaBlockingD2H)), TwoHop(S::CudaAsyncD2H, S::Memcpy));
  for (const StorageKind src : {System, Pinned, Device(0), Disk(0)}) {
    for (const StorageKind dst : {System, Pinned, Device(0), Disk(1)}) {
      const TransferPlan selected = select_direct_strategy(src, dst, false, caps);
      const TransferPlan runs = execution_plan(selected);
      const auto* direct = std::get_if<DirectPlan>(&selected);
      const bool blocking = direct && (direct->strategy == S::CudaBlockingH2D || direct->strategy == S::CudaBlockingD2H);
      if (!blocking) EXPECT_EQ(runs, selected) << to_string(selected);
      EXPECT_EQ(to_string(runs).find("Blocking"), std::string::npos) << to_string(runs);
    }
  }
}

TEST(Strategy, DeviceToDevice) {
  EXPECT_EQ(select_direct_strategy(Device(0), Device(1), false, caps), Direct(S::CudaAsyncD2D));
  EXPECT_EQ(select_direct_strategy(Device(3), Device(3), false, caps), Direct(S::CudaAsyncD2D));
}

TEST(Strategy, DiskToHost) {
  EXPECT_EQ(select_direct_strategy(Disk(42), System, false, caps), Direct(S::NixlReadFlipped));
  EXPECT_EQ(select_direct_strategy(Disk(42), Pinned, false, caps), Direct(S::NixlReadFlipped));
}

TEST(Strategy, HostToDisk) {
  EXPECT_EQ(select_direct_strategy(System, Disk(42), false, caps), Direct(S::NixlWrite));
  EXPECT_EQ(select_direct_strategy(Pinned, Disk(42), false, caps), Direct(S::NixlWrite));
}

TEST(Strategy, DiskToDiskIsTwoHop) {
  EXPECT_EQ(select_direct_strategy(Disk(1), Disk(2), false, caps), TwoHop(S::NixlReadFlipped, S::NixlWrite));
}

TEST(Strategy, DeviceToDiskWithoutGds) {
  EXPECT_EQ(select_direct_strategy(Device(0), Disk(42), false, caps), TwoHop(S::CudaAsyncD2H, S::NixlWrite));
}

TEST(Strategy, DiskToDeviceWithoutGds) {
  EXPECT_EQ(select_direct_strategy(Disk(42), Device(0), false, caps), TwoHop(S::NixlReadFlipped, S::CudaAsyncH2D));
}

TEST(Strategy, DeviceToDiskWithGds) {
  EXPECT_EQ(select_direct_strategy(Device(0), Disk(42), false, caps.with_gds(true)), Direct(S::NixlWrite));
}

TEST(Strategy, DiskToDeviceWithGds) {
  EXPECT_EQ(select_direct_strategy(Disk(42), Device(0), false, caps.with_gds(true)), Direct(S::NixlRead));
}

TEST(Strategy, HostToRemote) {
  EXPECT_EQ(select_direct_strategy(System, System, true, caps), Direct(S::NixlWrite));
  EXPECT_EQ(select_direct_strategy(Pinned, Pinned, true, caps), Direct(S::NixlWrite));
}

TEST(Strategy, DeviceToRemoteWithoutRdma) {
  EXPECT_EQ(select_direct_strategy(Device(0), System, true, caps), TwoHop(S::CudaAsyncD2H, S::NixlWrite));
}

TEST(Strategy, DeviceToRemoteWithRdma) {
  EXPECT_EQ(select_direct_strategy(Device(0), Device(0), true, caps.with_gpu_rdma(true)), Direct(S::NixlWrite));
}

TEST(Strategy, DiskToRemote) {
  EXPECT_EQ(select_direct_strategy(Disk(42), System, true, caps), TwoHop(S::NixlWrite, S::NixlWrite));
}

TEST(Strategy, CapabilitiesDoNotChangeHostPaths) {
  const auto all = caps.with_gds(true).with_gpu_rdma(true);
  EXPECT_EQ(select_direct_strategy(System, Pinned, false, all), Direct(S::Memcpy));
  EXPECT_EQ(select_direct_strategy(Disk(1), Disk(2), false, all), TwoHop(S::NixlReadFlipped, S::NixlWrite));
}

TEST(StrategyV2, LocalToRemoteWritesRemoteToLocalReadsFlipped) {
  EXPECT_EQ(select_strategy(System, true, Pinned, false, caps), Direct(S::NixlWrite));
  EXPECT_EQ(select_strategy(Pinned, false, System, true, caps), Direct(S::NixlReadFlipped));
  const auto rdma = caps.with_gpu_rdma(true);
  EXPECT_EQ(select_strategy(Device(0), true, Device(1), false, rdma), Direct(S::NixlWrite));
  EXPECT_EQ(select_strategy(Device(0), false, System, true, rdma), Direct(S::NixlReadFlipped));
}

TEST(StrategyV2, BothRemoteIsAnError) {
  try {
    (void)select_strategy(System, false, System, false, caps);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(error.message().find("both source and destination are remote"), std::string::npos);
  }
}

TEST(StrategyV2, AnyDiskOnARemoteTransferIsAnError) {
  const auto all = caps.with_gds(true).with_gpu_rdma(true);
  EXPECT_THROW((void)select_strategy(Disk(0), true, System, false, all), Error);
  EXPECT_THROW((void)select_strategy(System, true, Disk(0), false, all), Error);
  EXPECT_THROW((void)select_strategy(Disk(0), false, Pinned, true, all), Error);
  try {
    (void)select_strategy(Disk(3), true, System, false, all);
  } catch (const Error& error) {
    EXPECT_NE(error.message().find("Disk(3)"), std::string::npos) << error.what();
  }
}

TEST(StrategyV2, DeviceWithoutGpuRdmaIsAnError) {
  EXPECT_THROW((void)select_strategy(Device(0), true, System, false, caps), Error);
  EXPECT_THROW((void)select_strategy(System, false, Device(0), true, caps), Error);
  try {
    (void)select_strategy(Device(1), true, Pinned, false, caps.with_gds(true));
  } catch (const Error& error) {
    EXPECT_NE(error.message().find("GPU RDMA is disabled"), std::string::npos) << error.what();
  }
}

TEST(StrategyV2, RemoteStrategyNeedsExactlyOneRemoteSide) {
  EXPECT_THROW((void)select_remote_strategy_v2(System, true, System, true, caps), Error);
}

TEST(Strategy, Printing) {
  EXPECT_EQ(to_string(Direct(S::Memcpy)), "Direct(Memcpy)");
  EXPECT_EQ(to_string(TwoHop(S::CudaAsyncD2H, S::NixlWrite)), "TwoHop(CudaAsyncD2H -> Pinned -> NixlWrite)");
  EXPECT_EQ(to_json(Direct(S::Memcpy)), R"({"plan":"direct","strategy":"Memcpy"})");
  EXPECT_EQ(to_json(TwoHop(S::CudaAsyncD2H, S::NixlWrite)),
            R"({"plan":"two_hop","first":"CudaAsyncD2H","bounce":"Pinned","second":"NixlWrite"})");
}

}  // namespace kvbm
