// `kvbm bench --remote ... --json` prints JSON alone on standard output, over shared memory as
// over tcp: connecting over shared memory provokes a UCX error line (no peer-failure handling
// there) that kvbm handles, and that line must not land among the JSON.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <string>

#include <nlohmann/json.hpp>

#include "support/run_command.hpp"
#include "support/worker_process.hpp"

namespace kvbm::testing {
namespace {

// Standard output of `kvbm ARGS` (standard error dropped), and its exit status.
std::pair<int, std::string> standard_output(const std::string& args) {
  const auto [out, status] = run_command("timeout 120 " + kvbm_cli(KVBM_CLI_PATH) + " " + args + " 2>/dev/null");
  return {WEXITSTATUS(status), out};
}

class RemoteBenchJson : public ::testing::TestWithParam<std::string> {};

TEST_P(RemoteBenchJson, StandardOutputIsOnlyTheRows) {
  const auto [status, out] = standard_output("bench --remote " + GetParam() + " --sizes 64K --bytes 1M --repeat 1 --json");
  ASSERT_EQ(status, 0) << out;
  nlohmann::json rows;
  ASSERT_NO_THROW(rows = nlohmann::json::parse(out)) << out;
  ASSERT_TRUE(rows.is_array()) << out;
  ASSERT_FALSE(rows.empty()) << out;
  for (const auto& row : rows) {
    EXPECT_EQ(row.at("remote"), GetParam()) << row;
    EXPECT_GT(row.at("gbps").get<double>(), 0) << row;
    EXPECT_GT(row.at("ceiling_gbps").get<double>(), 0) << row;
    EXPECT_GT(row.at("ratio").get<double>(), 0) << row;
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, RemoteBenchJson, ::testing::Values("sm", "tcp"));

}  // namespace
}  // namespace kvbm::testing
