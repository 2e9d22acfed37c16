#pragma once
// Device <-> disk copies through cuFile (GPUDirect Storage): the seed's NixlWrite / NixlRead
// between a GPU and a file when allow_gds is set. cuFile calls block, so they run on threads
// of the executor's own, each op cut into pieces that run in parallel.
#include <functional>
#include <memory>
#include <string>

#include "transfer/engine/copy_op.hpp"

namespace kvbm {

// Runs ops another way (the two-hop through pinned memory).
using FallbackRunner = std::function<void(CopyOps, DoneCallback)>;

// nullptr, with `reason` set, when GPUDirect Storage cannot run here (no libcufile, no GPU,
// or a build without CUDA). When cuFile loads but refuses a file (it cannot always tell what
// backs it, e.g. a virtual disk without udev properties), that batch and every later one go to
// `fallback`, with one warning naming the file and cuFile's error. `library_path`: the libcufile
// to load instead of the default search (empty: the default).
[[nodiscard]] std::unique_ptr<Executor> make_gds_executor(std::size_t threads, std::size_t piece_bytes,
                                                          FallbackRunner fallback, const std::string& library_path,
                                                          std::string& reason);

}  // namespace kvbm
