#pragma once
// A leader on a loopback TCP port for tests that run real processes. Ports come from below the
// kernel's ephemeral range (where outgoing connections take theirs) and another is tried when
// the one picked is in use by a test running alongside.
#include <memory>
#include <string>

#include "kvbm/distributed/leader.hpp"

namespace kvbm::testing {

// Binds `options` (its endpoint is chosen here) and returns the leader; the endpoint is in
// leader_endpoint.
[[nodiscard]] std::unique_ptr<Leader> leader_on_free_port(LeaderOptions options, std::string& leader_endpoint);

}  // namespace kvbm::testing
