#include "replay_trace.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "common/make_error.hpp"

namespace kvbm::tools {
namespace {

constexpr std::size_t kMaxBlocksPerRequest = std::size_t{1} << 20;

[[noreturn]] void bad_line(const std::string& path, std::size_t line, const std::string& what) {
  throw make_error(ErrorCode::InvalidArgument, "trace {} line {}: {}", printable(path), line, what);
}

double number_field(const nlohmann::json& json, const char* name, const std::string& path, std::size_t line) {
  const auto found = json.find(name);
  if (found == json.end() || !found->is_number() || found->get<double>() < 0) {
    bad_line(path, line, fmt::format("'{}' must be a number >= 0", name));
  }
  return found->get<double>();
}

}  // namespace

Trace read_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw make_error(ErrorCode::Io, "cannot open trace {}", printable(path));
  Trace trace;
  std::string text;
  std::size_t line = 0;
  double first_start = -1;
  while (std::getline(in, text)) {
    ++line;
    if (std::all_of(text.begin(), text.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); })) continue;
    nlohmann::json json;
    try {
      // Depth is bounded by the parser's own recursion over a line; lines are one object each.
      json = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      bad_line(path, line, fmt::format("not JSON ({})", printable(e.what())));
    }
    if (!json.is_object()) bad_line(path, line, "not a JSON object");
    const std::string format = json.contains("chat_id") ? "qwen-bailian" : "mooncake";
    if (trace.format.empty()) {
      trace.format = format;
      trace.tokens_per_block = format == "mooncake" ? 512 : 16;
    } else if (trace.format != format) {
      bad_line(path, line, fmt::format("a {} request in a {} trace", format, trace.format));
    }
    const auto ids = json.find("hash_ids");
    if (ids == json.end() || !ids->is_array()) bad_line(path, line, "'hash_ids' must be an array");
    if (ids->size() > kMaxBlocksPerRequest) {
      bad_line(path, line, fmt::format("{} hash ids (at most {})", ids->size(), kMaxBlocksPerRequest));
    }
    TraceRequest request;
    request.blocks.reserve(ids->size());
    for (const auto& id : *ids) {
      if (!id.is_number_unsigned()) bad_line(path, line, "'hash_ids' must hold integers >= 0");
      request.blocks.push_back(id.get<std::uint64_t>());
    }
    // Mooncake's timestamps are milliseconds, Qwen-Bailian's seconds.
    const double stamp = number_field(json, "timestamp", path, line);
    const double seconds = format == "mooncake" ? stamp / 1000.0 : stamp;
    if (first_start < 0) first_start = seconds;
    request.start_seconds = std::max(0.0, seconds - first_start);
    trace.requests.push_back(std::move(request));
  }
  if (in.bad()) throw make_error(ErrorCode::Io, "reading trace {} failed", printable(path));
  if (trace.requests.empty()) throw make_error(ErrorCode::InvalidArgument, "trace {} holds no requests", printable(path));
  return trace;
}

std::vector<std::uint64_t> FreshIds::take(std::size_t count) {
  std::vector<std::uint64_t> ids(count);
  for (auto& id : ids) id = next_++;
  return ids;
}

Trace synthetic_trace(std::size_t requests, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  FreshIds fresh;
  // System prompts: popularity falls off as 1/(rank + 1).
  std::vector<std::vector<std::uint64_t>> prompts;
  std::vector<double> weights;
  for (int p = 0; p < 8; ++p) {
    prompts.push_back(fresh.take(std::uniform_int_distribution<std::size_t>(4, 12)(rng)));
    weights.push_back(1.0 / (p + 1));
  }
  std::discrete_distribution<std::size_t> pick_prompt(weights.begin(), weights.end());
  struct Conversation {
    std::vector<std::uint64_t> history;  // every block so far, system prompt first
    int turns_left;
  };
  std::vector<Conversation> active;
  std::geometric_distribution<int> turns(0.25);  // 1 + this: four turns on average, some many more
  std::uniform_int_distribution<std::size_t> user_blocks(1, 3);
  std::uniform_int_distribution<std::size_t> answer_blocks(1, 4);
  std::exponential_distribution<double> gap(200.0);  // 200 requests a second on average

  Trace trace{"synthetic", 16, {}};
  double clock = 0;
  while (trace.requests.size() < requests) {
    // A new session one time in three (or when none is open), else the next turn of an open one.
    if (active.empty() || (active.size() < 256 && std::uniform_int_distribution<int>(0, 2)(rng) == 0)) {
      active.push_back({prompts[pick_prompt(rng)], 1 + turns(rng)});
    }
    const std::size_t which = std::uniform_int_distribution<std::size_t>(0, active.size() - 1)(rng);
    Conversation& conversation = active[which];
    const auto user = fresh.take(user_blocks(rng));
    conversation.history.insert(conversation.history.end(), user.begin(), user.end());
    trace.requests.push_back({clock, conversation.history});
    clock += gap(rng);
    const auto answer = fresh.take(answer_blocks(rng));
    conversation.history.insert(conversation.history.end(), answer.begin(), answer.end());
    if (--conversation.turns_left <= 0) {
      active[which] = std::move(active.back());
      active.pop_back();
    }
  }
  return trace;
}

}  // namespace kvbm::tools
