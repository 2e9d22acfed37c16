#pragma once
// Device <-> disk copies through cuFile (GPUDirect Storage): the seed's NixlWrite / NixlRead
// between a GPU and a file when allow_gds is set. cuFile calls block, so they run on threads
// of the executor's own, each op cut into pieces that run in parallel.
#include <memory>
#include <string>

#include "transfer/copy_op.hpp"

namespace kvbm {

// nullptr, with `reason` set, when GPUDirect Storage cannot run here (no libcufile, no GPU,
// or a build without CUDA).
[[nodiscard]] std::unique_ptr<Executor> make_gds_executor(std::size_t threads, std::size_t piece_bytes,
                                                          std::string& reason);

}  // namespace kvbm
