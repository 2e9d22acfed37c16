#pragma once
// Request traces for `kvbm replay`: one request per line of JSON, in Mooncake's format
// ({"timestamp": ms, "input_length", "output_length", "hash_ids"}, 512 tokens a block) or
// Alibaba's Qwen-Bailian format ({"chat_id", "parent_chat_id", "timestamp": s, "input_length",
// "output_length", "type", "turn", "hash_ids"}, 16 tokens a block); or a synthetic multi-turn
// chat workload made here.
#include <cstdint>
#include <string>
#include <vector>

namespace kvbm::tools {

struct TraceRequest {
  double start_seconds = 0;            // from the trace's first request
  std::vector<std::uint64_t> blocks;   // hash ids: one per block, prefix-aware
};

struct Trace {
  std::string format;  // "mooncake", "qwen-bailian", "synthetic" or "agentic"
  std::size_t tokens_per_block = 16;
  std::vector<TraceRequest> requests;
};

// Hash ids for blocks no request has had yet: 1, 2, 3... in the order they are taken.
class FreshIds {
 public:
  [[nodiscard]] std::vector<std::uint64_t> take(std::size_t count);

 private:
  std::uint64_t next_ = 1;
};

// Reads a JSONL trace, recognising the format by its fields. Throws InvalidArgument naming the
// file, the line and what is wrong with it (not JSON, a missing or mistyped field, a format that
// changes between lines); Io when the file cannot be read.
[[nodiscard]] Trace read_trace(const std::string& path);

// `requests` requests of chat sessions: a few shared system prompts (some far more popular than
// others), conversations that grow turn by turn (each turn repeats the whole conversation so far
// and adds the user's new blocks and the previous answer), many interleaved at once, most ending
// after a few turns. Deterministic for a seed.
[[nodiscard]] Trace synthetic_trace(std::size_t requests, std::uint64_t seed);

// `requests` steps of agent sessions: a few agents whose long system prompts and start-up tool
// outputs every session of theirs shares, sessions of about a dozen steps (each repeats the
// session so far, adds a tool's output, then the model's next call), many interleaved, and one
// step in ten branching off a new session from an earlier step (a retry, a second approach).
// Deterministic for a seed.
[[nodiscard]] Trace agentic_trace(std::size_t requests, std::uint64_t seed);

}  // namespace kvbm::tools
