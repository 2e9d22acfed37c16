// CURVE on the leader/worker channel, with `kvbm worker` processes: only workers whose public key
// the leader holds register, a worker talks only to the leader whose key it holds, and keys are
// files of `kvbm keygen`'s making.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "kvbm/distributed/curve_keys.hpp"
#include "kvbm/distributed/leader.hpp"
#include "support/leader_port.hpp"
#include "support/roundtrip.hpp"
#include "support/worker_process.hpp"

namespace kvbm::testing {
namespace {

using namespace std::chrono_literals;

// Key pairs written as `kvbm keygen` writes them: leader, worker, and a stranger whose public
// key the leader does not hold; the leader's peers directory holds the worker's alone.
struct Keys {
  Keys() {
    for (const char* name : {"leader", "worker", "stranger"}) write_curve_keypair(dir.path() + "/" + name, generate_curve_keypair());
    std::filesystem::create_directory(peers());
    std::filesystem::copy_file(dir.path() + "/worker.pub", peers() + "/worker.pub");
  }
  [[nodiscard]] std::string path(const std::string& file) const { return dir.path() + "/" + file; }
  [[nodiscard]] std::string peers() const { return dir.path() + "/peers"; }
  [[nodiscard]] std::vector<std::string> worker_flags(const std::string& key = "worker.key") const {
    return {"--auth-key", path(key), "--leader-pub", path("leader.pub")};
  }
  [[nodiscard]] LeaderOptions leader_options(bool with_keys) const {
    LeaderOptions options{.world_size = 1};
    if (with_keys) {
      options.auth_key = read_curve_secret_file(path("leader.key"));
      options.auth_peers = read_curve_public_directory(peers());
    }
    return options;
  }
  TempDir dir;
};

WorkerProcess start_worker(const std::string& endpoint, const std::vector<std::string>& auth, const std::string& log) {
  std::vector<std::string> args = {"worker", "--leader", endpoint, "--rank", "0", "--world-size", "1",
                                   "--host-blocks", "8", "--num-layers", "1", "--page-size", "4", "--inner-dim", "64",
                                   "--leader-wait-ms", "20000"};
  args.insert(args.end(), auth.begin(), auth.end());
  return WorkerProcess::command(kvbm_cli(KVBM_CLI_PATH), args, log);
}

TEST(Curve, AWorkerWithAKeyTheLeaderHoldsRegistersAndIsServed) {
  Keys keys;
  std::string endpoint;
  auto leader = leader_on_free_port(keys.leader_options(true), endpoint);
  WorkerProcess worker = start_worker(endpoint, keys.worker_flags(), keys.path("worker.log"));
  leader->wait_for_workers(30s);
  const LeaderResult fill = leader->send(protocol::kFill, {R"({"pool":"Host","blocks":[1],"seed":7})"}, 20s);
  EXPECT_TRUE(fill.status.ok()) << fill.status.to_string();
  const LeaderResult hash = leader->send(protocol::kHash, {R"({"pool":"Host","blocks":[1,2]})"}, 20s);
  ASSERT_TRUE(hash.status.ok()) << hash.status.to_string();
  const auto hashes = nlohmann::json::parse(hash.outcomes.at(0).data)["hashes"];
  EXPECT_NE(hashes.at(0), hashes.at(1));  // block 1 holds the filled bytes, block 2 does not
}

TEST(Curve, WorkersWithoutAKeyOrWithAStrangersKeyNeverRegister) {
  Keys keys;
  std::string endpoint;
  auto leader = leader_on_free_port(keys.leader_options(true), endpoint);
  for (const std::vector<std::string>& auth : {std::vector<std::string>{}, keys.worker_flags("stranger.key")}) {
    WorkerProcess worker = start_worker(endpoint, auth, keys.path("worker.log"));
    try {
      leader->wait_for_workers(3s);
      ADD_FAILURE() << "a worker registered with " << (auth.empty() ? "no key" : "a key the leader does not hold");
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::Timeout) << error.what();
    }
  }
}

TEST(Curve, AWorkerWithKeysIgnoresALeaderWithout) {
  Keys keys;
  std::string endpoint;
  auto leader = leader_on_free_port(keys.leader_options(false), endpoint);
  WorkerProcess worker = start_worker(endpoint, keys.worker_flags(), keys.path("worker.log"));
  EXPECT_THROW(leader->wait_for_workers(3s), Error);
  worker.signal(SIGTERM);
  EXPECT_EQ(worker.wait_exit(20s), 0);
  EXPECT_NE(read_text(keys.path("worker.log")).find("cannot reach the leader"), std::string::npos)
      << read_text(keys.path("worker.log"));
}

TEST(Curve, KeyFilesAreCheckedWhenRead) {
  Keys keys;
  const CurveKeyPair pair = read_curve_secret_file(keys.path("leader.key"));
  EXPECT_EQ(pair.public_key, read_curve_public_file(keys.path("leader.pub")));
  EXPECT_EQ(pair.public_key.size(), 40u);
  ::chmod(keys.path("leader.key").c_str(), 0644);
  EXPECT_THROW(
      {
        try {
          (void)read_curve_secret_file(keys.path("leader.key"));
        } catch (const Error& error) {
          EXPECT_NE(std::string(error.what()).find("may be read by others (mode 644)"), std::string::npos) << error.what();
          throw;
        }
      },
      Error);
  EXPECT_THROW(write_curve_keypair(keys.path("leader"), generate_curve_keypair()), Error);  // never overwrites
  std::ofstream(keys.path("broken.pub")) << "public = not-a-key\n";
  EXPECT_THROW((void)read_curve_public_file(keys.path("broken.pub")), Error);
  std::filesystem::create_directory(keys.path("empty"));
  EXPECT_THROW((void)read_curve_public_directory(keys.path("empty")), Error);
}

}  // namespace
}  // namespace kvbm::testing
