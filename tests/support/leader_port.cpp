#include "support/leader_port.hpp"

#include <random>

namespace kvbm::testing {

std::unique_ptr<Leader> leader_on_free_port(LeaderOptions options, std::string& leader_endpoint) {
  // 20000-32766, even (replies take port + 1): below Linux's default ephemeral range, 32768-60999.
  std::mt19937 rng(std::random_device{}());
  for (int attempt = 0;; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 6383) * 2;
    options.message_endpoint = "tcp://127.0.0.1:" + std::to_string(port);
    try {
      auto leader = std::make_unique<Leader>(options);
      leader_endpoint = options.message_endpoint;
      return leader;
    } catch (const Error& error) {
      if (error.code() != ErrorCode::Io || attempt == 50) throw;
    }
  }
}

}  // namespace kvbm::testing
