// `kvbm leader`: waits for W workers, sends requests from the command line or a JSON-lines file
// to all of them, and prints one JSON line of results per request.
#include <fstream>
#include <iostream>
#include <optional>

#include "commands.hpp"
#include "common/json_input.hpp"
#include "kvbm/config/environment.hpp"
#include "kvbm/distributed/leader.hpp"

namespace kvbm::tools {
namespace {

struct LeaderCliOptions {
  std::string bind;
  int world_size = 0;
  int timeout_ms = 10000;
  int register_timeout_ms = 30000;
  std::vector<std::string> requests;
  std::string file;
  bool shutdown = false;
  std::optional<int> message_cpu;  // unset: not pinned
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

}  // namespace

Command add_leader_command(CLI::App& app) {
  auto* command = app.add_subcommand("leader", "Send block transfer requests to every worker and print the results");
  auto o = std::make_shared<LeaderCliOptions>();
  command->add_option("--bind", o->bind, "Message endpoint to bind (tcp://HOST:PORT; replies on PORT+1)")->required();
  command->add_option("--world-size", o->world_size, "Number of workers to wait for")->required()->check(CLI::PositiveNumber);
  command->add_option("--timeout-ms", o->timeout_ms, "How long to wait for every rank's answer")->check(CLI::PositiveNumber);
  command->add_option("--register-timeout-ms", o->register_timeout_ms, "How long to wait for workers to register")
      ->check(CLI::PositiveNumber);
  command->add_option("--request", o->requests, "A request as JSON (repeatable)");
  command->add_option("--file", o->file, "A file of requests, one JSON object per line")->check(CLI::ExistingFile);
  command->add_flag("--shutdown", o->shutdown, "Tell the workers to exit at the end");
  command->add_option("--message-cpu", o->message_cpu,
                      "CPU for the reply loop and ZeroMQ I/O thread (default: not pinned)");
  return {command, [o] {
    std::vector<std::string> lines = o->requests;
    if (!o->file.empty()) {
      std::ifstream in(o->file);
      for (std::string line; std::getline(in, line);) {
        if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(line);
      }
    }
    Leader leader(environment::leader_options(
        {.message_endpoint = o->bind, .world_size = o->world_size, .message_cpu = o->message_cpu}));
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
