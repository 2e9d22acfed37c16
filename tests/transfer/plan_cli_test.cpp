// `kvbm plan` run as a real process for every pair of the four kinds, local and remote, with
// and without each capability, against seed 003's table written out independently here.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <string>

#include <nlohmann/json.hpp>

#include "support/run_command.hpp"

namespace {

struct Output {
  int exit_code;
  std::string out;
};

Output run_cli(const std::string& args) {
  auto [out, status] = kvbm::testing::run_command(std::string(KVBM_CLI_PATH) + " " + args + " 2>&1");
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return {WEXITSTATUS(status), out};
}

const char* kKinds[] = {"system", "pinned", "device:0", "disk:1"};

// Seed 003, local -> local (select_direct_strategy).
std::string expected_local(const std::string& src, const std::string& dst, bool gds) {
  const bool src_host = src == "system" || src == "pinned";
  const bool dst_host = dst == "system" || dst == "pinned";
  if (src_host && dst_host) return "Direct(Memcpy)";
  // The seed's blocking copies, as the two hops through pinned memory they run as.
  if (src == "system" && dst == "device:0") return "TwoHop(Memcpy -> Pinned -> CudaAsyncH2D)";
  if (src == "pinned" && dst == "device:0") return "Direct(CudaAsyncH2D)";
  if (src == "device:0" && dst == "system") return "TwoHop(CudaAsyncD2H -> Pinned -> Memcpy)";
  if (src == "device:0" && dst == "pinned") return "Direct(CudaAsyncD2H)";
  if (src == "device:0" && dst == "device:0") return "Direct(CudaAsyncD2D)";
  if (src_host && dst == "disk:1") return "Direct(NixlWrite)";
  if (src == "disk:1" && dst_host) return "Direct(NixlReadFlipped)";
  if (src == "disk:1" && dst == "disk:1") return "TwoHop(NixlReadFlipped -> Pinned -> NixlWrite)";
  if (src == "device:0" && dst == "disk:1") return gds ? "Direct(NixlWrite)" : "TwoHop(CudaAsyncD2H -> Pinned -> NixlWrite)";
  return gds ? "Direct(NixlRead)" : "TwoHop(NixlReadFlipped -> Pinned -> CudaAsyncH2D)";
}

// Seed 003, one side remote (select_remote_strategy_v2): empty string means an error.
std::string expected_remote(const std::string& src, const std::string& dst, bool src_remote, bool rdma) {
  if (src == "disk:1" || dst == "disk:1") return "";
  if (!rdma && (src == "device:0" || dst == "device:0")) return "";
  return src_remote ? "Direct(NixlReadFlipped)" : "Direct(NixlWrite)";
}

}  // namespace

TEST(PlanCli, AgreesWithSeedForEveryPairAndCapability) {
  for (const char* src : kKinds) {
    for (const char* dst : kKinds) {
      for (int mode = 0; mode < 4; ++mode) {  // local, remote-src, remote-dst, both remote
        for (int caps = 0; caps < 4; ++caps) {
          const bool gds = caps & 1;
          const bool rdma = caps & 2;
          std::string args = std::string("plan ") + src + " " + dst;
          if (mode & 1) args += " --remote-src";
          if (mode & 2) args += " --remote-dst";
          if (gds) args += " --gds";
          if (rdma) args += " --gpu-rdma";
          const std::string expected = mode == 0   ? expected_local(src, dst, gds)
                                       : mode == 3 ? ""
                                                   : expected_remote(src, dst, mode & 1, rdma);
          const Output result = run_cli(args);
          SCOPED_TRACE(args);
          if (expected.empty()) {
            EXPECT_EQ(result.exit_code, 1) << result.out;
            EXPECT_NE(result.out.find("kvbm plan:"), std::string::npos) << result.out;
          } else {
            EXPECT_EQ(result.exit_code, 0) << result.out;
            EXPECT_EQ(result.out, expected);
          }
        }
      }
    }
  }
}

TEST(PlanCli, JsonForms) {
  Output result = run_cli("plan device:0 disk --json");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, R"({"plan":"two_hop","first":"CudaAsyncD2H","bounce":"Pinned","second":"NixlWrite"})");
  result = run_cli("plan system pinned --json");
  EXPECT_EQ(result.out, R"({"plan":"direct","strategy":"Memcpy"})");
  result = run_cli("plan disk system --remote-dst --json");
  EXPECT_EQ(result.exit_code, 1);
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_NE(json.at("error").get<std::string>().find("disk"), std::string::npos);
}

TEST(PlanCli, BadArgumentsAreNamed) {
  Output result = run_cli("plan gpu system");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.out.find("'gpu'"), std::string::npos) << result.out;
  result = run_cli("plan device:x system --json");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.out.find("device:x"), std::string::npos) << result.out;
  result = run_cli("plan system");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.out.find("DST"), std::string::npos) << result.out;
  result = run_cli("plan system pinned --frobnicate");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.out.find("frobnicate"), std::string::npos) << result.out;
}

TEST(InfoCli, RunsAndReportsEveryFacility) {
  Output result = run_cli("info --json");
  ASSERT_EQ(result.exit_code, 0) << result.out;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_TRUE(json.contains("devices"));
  EXPECT_TRUE(json.at("io_uring").contains("usable"));
  EXPECT_TRUE(json.at("o_direct").contains("usable"));
  EXPECT_TRUE(json.at("pinned_memory").contains("usable"));
  result = run_cli("info --dir /nonexistent/dir");
  EXPECT_NE(result.exit_code, 0);
}
