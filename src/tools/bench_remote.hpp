#pragma once
// `kvbm bench --remote TRANSPORTS`: RemoteAgent puts and gets against a second kvbm process on
// this host (`kvbm remote-target`, started here), one operation per block, beside ucx_perftest's
// ucp_put_bw and ucp_get on the same transport and block size in the same run.
#include <cstddef>
#include <string>
#include <vector>

namespace kvbm::tools {

struct RemoteBenchOptions {
  std::string transports;
  std::vector<std::size_t> sizes;
  std::size_t bytes = 0;  // per timed transfer
  int repeat = 3;
};

int run_remote_bench(const RemoteBenchOptions& options);

}  // namespace kvbm::tools
