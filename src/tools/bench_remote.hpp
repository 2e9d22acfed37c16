#pragma once
// `kvbm bench --remote TRANSPORTS`: RemoteAgent puts and gets of distinct blocks against a second
// kvbm process on this host (`kvbm remote-target`, started here), one operation per block,
// beside a memcpy of the same blocks in this process (their ceiling); and of one block repeated
// beside ucx_perftest's ucp_put_bw and ucp_get, same transport and block size, in the same run.
#include <cstddef>
#include <string>
#include <vector>

#include "kvbm/remote/remote_agent.hpp"

namespace kvbm::tools {

struct RemoteBenchOptions {
  std::string transports;
  std::vector<std::size_t> sizes;
  std::size_t bytes = 0;  // per timed transfer
  int repeat = 3;
  std::size_t lanes = RemoteAgentOptions{}.lanes;  // the bench's agent's
  bool json = false;  // one JSON array of rows (put and get per block size)
};

int run_remote_bench(const RemoteBenchOptions& options);

}  // namespace kvbm::tools
