// `kvbm leader`: waits for W workers, sends requests from the command line or a JSON-lines file
// to all of them, and prints one JSON line of results per request.
#include <fstream>
#include <iostream>
#include <optional>

#include "commands.hpp"
#include "common/json_input.hpp"
#include "kvbm/config/environment.hpp"
#include "kvbm/distributed/dynamo_leader.hpp"
#include "kvbm/distributed/leader.hpp"

namespace kvbm::tools {
namespace {

struct LeaderCliOptions {
  std::string protocol = "kvbm";
  std::string bind;     // empty: Dynamo's DYN_KVBM_LEADER_ZMQ_HOST and _PUB_PORT
  std::string replies;  // Dynamo protocol: empty: DYN_KVBM_LEADER_ZMQ_ACK_PORT (with --bind: its port + 1)
  std::optional<std::uint64_t> host_blocks;  // Dynamo protocol: unset: DYN_KVBM_CPU_CACHE_GB
  std::optional<std::uint64_t> disk_blocks;  // Dynamo protocol: unset: DYN_KVBM_DISK_CACHE_GB
  int world_size = 0;
  int timeout_ms = 10000;
  int register_timeout_ms = 30000;
  std::vector<std::string> requests;
  std::string file;
  bool shutdown = false;
  std::string auth_key;    // CURVE: the leader's .key file
  std::string auth_peers;  // CURVE: a directory of the workers' .pub files
  std::optional<int> message_cpu;  // unset: not pinned
  bool replicated = false;
};

// A line is a BlockTransferRequest, or {"handler": NAME, "data": {...}} for another handler.
LeaderResult send_line(Leader& leader, const std::string& line, std::chrono::milliseconds timeout) {
  const auto json = json_input::parse(line, "the request line");
  if (json.is_object() && json.contains("handler")) {
    const std::string handler = json_input::required_string(json, "handler", "the request line", 256);
    std::vector<std::string> frames;
    if (const auto* data = json_input::find(json, "data")) frames.push_back(json_input::dump(*data));
    return leader.send(handler, frames, timeout);
  }
  return leader.transfer(decode_request(line), timeout);
}

// Dynamo's protocol: the three-step handshake, then each line as transfer_blocks, counted by
// plain acks (which say nothing of success: the workers log their errors).
int run_dynamo_leader(const LeaderCliOptions& o, const std::vector<std::string>& lines) {
  const environment::DynamoSettings deployment = environment::dynamo_settings();
  DynamoLeaderOptions options;
  options.pub_endpoint = o.bind.empty() ? deployment.pub_endpoint() : o.bind;
  options.ack_endpoint = !o.replies.empty()  ? o.replies
                         : o.bind.empty()    ? deployment.ack_endpoint()
                                             : protocol::reply_endpoint(o.bind);
  options.world_size = o.world_size;
  DynamoLeader leader(options);
  const auto workers = leader.handshake(
      [&](const std::vector<dynamo::WorkerMetadata>& answers) {
        const std::uint64_t bytes = answers.front().bytes_per_block;
        return dynamo::LeaderMetadata{o.host_blocks.value_or(environment::DynamoSettings::blocks(deployment.cpu_cache_gb, bytes)),
                                      o.disk_blocks.value_or(environment::DynamoSettings::blocks(deployment.disk_cache_gb, bytes))};
      },
      std::chrono::milliseconds(o.register_timeout_ms));
  nlohmann::json handshake{{"handshake", "done"}, {"workers", nlohmann::json::array()}};
  for (const auto& worker : workers) {
    handshake["workers"].push_back({{"num_device_blocks", worker.num_device_blocks}, {"bytes_per_block", worker.bytes_per_block}});
  }
  std::cout << json_input::dump(handshake) << std::endl;
  bool all_acked = true;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    nlohmann::json out{{"request", i}};
    try {
      leader.transfer(decode_request(lines[i]), std::chrono::milliseconds(o.timeout_ms));
      out["acked"] = o.world_size;
    } catch (const Error& error) {
      out["error"] = error.message();
      all_acked = false;
    }
    std::cout << json_input::dump(out) << std::endl;
  }
  return all_acked ? 0 : 1;
}

}  // namespace

Command add_leader_command(CLI::App& app) {
  auto* command = app.add_subcommand("leader", "Send block transfer requests to every worker and print the results");
  auto o = std::make_shared<LeaderCliOptions>();
  command->add_option("--protocol", o->protocol, "kvbm, or dynamo: drive Dynamo 1.6 KVBM workers (plain acks)")
      ->check(CLI::IsMember({"kvbm", "dynamo"}))->capture_default_str();
  command->add_option("--bind", o->bind,
                      "Message endpoint to bind (tcp://HOST:PORT; replies on PORT+1; default: DYN_KVBM_LEADER_ZMQ_HOST "
                      "and _PUB_PORT)");
  command->add_option("--replies", o->replies, "Dynamo protocol: reply endpoint to bind (default: DYN_KVBM_LEADER_ZMQ_ACK_PORT)");
  command->add_option("--host-blocks", o->host_blocks, "Dynamo protocol: host blocks per worker (default: DYN_KVBM_CPU_CACHE_GB)");
  command->add_option("--disk-blocks", o->disk_blocks, "Dynamo protocol: disk blocks per worker (default: DYN_KVBM_DISK_CACHE_GB)");
  command->add_option("--world-size", o->world_size, "Number of workers to wait for")->required()->check(CLI::PositiveNumber);
  command->add_option("--timeout-ms", o->timeout_ms, "How long to wait for every rank's answer")->check(CLI::PositiveNumber);
  command->add_option("--register-timeout-ms", o->register_timeout_ms, "How long to wait for workers to register")
      ->check(CLI::PositiveNumber);
  command->add_option("--request", o->requests, "A request as JSON (repeatable)");
  command->add_option("--file", o->file, "A file of requests, one JSON object per line")->check(CLI::ExistingFile);
  command->add_flag("--shutdown", o->shutdown, "Tell the workers to exit at the end");
  command->add_flag("--replicated", o->replicated,
                    "Replicated mode: only replicated workers register; they are given an NCCL communicator");
  command->add_option("--message-cpu", o->message_cpu,
                      "CPU for the reply loop and ZeroMQ I/O thread (default: not pinned)");
  auto* key = command->add_option("--auth-key", o->auth_key, "CURVE: this leader's key pair (kvbm keygen NAME: NAME.key)")
                  ->check(CLI::ExistingFile);
  command->add_option("--auth-peers", o->auth_peers, "CURVE: a directory of the .pub files of the workers it accepts")
      ->check(CLI::ExistingDirectory)->needs(key);
  key->needs("--auth-peers");
  return {command, [o] {
    std::vector<std::string> lines = o->requests;
    if (!o->file.empty()) {
      std::ifstream in(o->file);
      for (std::string line; std::getline(in, line);) {
        if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(line);
      }
    }
    if (o->protocol == "dynamo") return run_dynamo_leader(*o, lines);
    if (o->bind.empty()) o->bind = environment::dynamo_settings().pub_endpoint();
    LeaderOptions given;
    given.message_endpoint = o->bind;
    given.world_size = o->world_size;
    given.message_cpu = o->message_cpu;
    given.replicated = o->replicated;
    if (!o->auth_key.empty()) {
      given.auth_key = read_curve_secret_file(o->auth_key);
      given.auth_peers = read_curve_public_directory(o->auth_peers);
    }
    Leader leader(environment::leader_options(std::move(given)));
    leader.wait_for_workers(std::chrono::milliseconds(o->register_timeout_ms));
    bool all_ok = true;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      nlohmann::json out{{"request", i}};
      try {
        const LeaderResult result = send_line(leader, lines[i], std::chrono::milliseconds(o->timeout_ms));
        out["ok"] = result.status.ok();
        if (!result.status.ok()) out["error"] = result.status.error().message();
        out["ranks"] = nlohmann::json::array();
        for (const auto& outcome : result.outcomes) {
          nlohmann::json rank{{"rank", outcome.rank}, {"ok", outcome.status.ok()}};
          if (!outcome.status.ok()) rank["error"] = outcome.status.error().message();
          if (!outcome.data.empty()) rank["data"] = nlohmann::json::parse(outcome.data);
          out["ranks"].push_back(rank);
        }
      } catch (const Error& error) {
        out["ok"] = false;
        out["error"] = error.message();
      }
      all_ok &= out["ok"].get<bool>();
      std::cout << json_input::dump(out) << std::endl;
    }
    if (o->shutdown) (void)leader.send(protocol::kShutdown, {}, std::chrono::milliseconds(o->timeout_ms));
    return all_ok ? 0 : 1;
  }};
}

}  // namespace kvbm::tools
