// The built-in agentic workload of `kvbm replay --workload agentic` (see agentic_trace).
#include <algorithm>
#include <random>

#include "replay_trace.hpp"

namespace kvbm::tools {

Trace agentic_trace(std::size_t requests, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  FreshIds fresh;
  // Agents: a long system prompt with tool definitions, then a start-up tool output every session
  // of that agent sees alike (a repository map, a schema); popularity falls off as 1/(rank + 1).
  struct Agent {
    std::vector<std::uint64_t> preamble;
  };
  std::vector<Agent> agents;
  std::vector<double> weights;
  for (int a = 0; a < 6; ++a) {
    auto preamble = fresh.take(std::uniform_int_distribution<std::size_t>(40, 120)(rng));
    const auto bootstrap = fresh.take(std::uniform_int_distribution<std::size_t>(10, 40)(rng));
    preamble.insert(preamble.end(), bootstrap.begin(), bootstrap.end());
    agents.push_back({std::move(preamble)});
    weights.push_back(1.0 / (a + 1));
  }
  std::discrete_distribution<std::size_t> pick_agent(weights.begin(), weights.end());
  struct Session {
    std::vector<std::uint64_t> history;
    std::vector<std::size_t> step_ends;  // history sizes after each step: where a branch may start
    int steps_left;
  };
  std::vector<Session> active;
  std::geometric_distribution<int> steps(0.08);                  // 1 + this: about 12 steps, some many more
  std::uniform_int_distribution<std::size_t> task_blocks(1, 4);  // the user's task
  std::uniform_int_distribution<std::size_t> tool_blocks(2, 12);  // one tool call's output
  std::uniform_int_distribution<std::size_t> action_blocks(1, 3);  // the model's next call
  std::bernoulli_distribution branch(0.1);                        // retry or explore from an earlier step
  std::exponential_distribution<double> gap(100.0);

  Trace trace{"agentic", 16, {}};
  double clock = 0;
  while (trace.requests.size() < requests) {
    if (active.empty() || (active.size() < 64 && std::uniform_int_distribution<int>(0, 3)(rng) == 0)) {
      Session session{agents[pick_agent(rng)].preamble, {}, 1 + steps(rng)};
      const auto task = fresh.take(task_blocks(rng));
      session.history.insert(session.history.end(), task.begin(), task.end());
      session.step_ends.push_back(session.history.size());
      active.push_back(std::move(session));
    }
    const std::size_t which = std::uniform_int_distribution<std::size_t>(0, active.size() - 1)(rng);
    if (branch(rng) && active[which].step_ends.size() > 1 && active.size() < 64) {
      // A branch: a new session sharing this one's history up to an earlier step.
      Session copy = active[which];
      const std::size_t back = std::uniform_int_distribution<std::size_t>(0, copy.step_ends.size() - 2)(rng);
      copy.history.resize(copy.step_ends[back]);
      copy.step_ends.resize(back + 1);
      copy.steps_left = 1 + steps(rng) / 2;
      active.push_back(std::move(copy));
    }
    Session& session = active[which];
    const auto tool = fresh.take(tool_blocks(rng));
    session.history.insert(session.history.end(), tool.begin(), tool.end());
    trace.requests.push_back({clock, session.history});
    clock += gap(rng);
    const auto action = fresh.take(action_blocks(rng));
    session.history.insert(session.history.end(), action.begin(), action.end());
    session.step_ends.push_back(session.history.size());
    if (--session.steps_left <= 0) {
      active[which] = std::move(active.back());
      active.pop_back();
    }
  }
  return trace;
}

}  // namespace kvbm::tools
