#pragma once
// Device memory on a remote transfer without GPU RDMA (beyond seed 003's v2, which refuses it):
// blocks go through a pinned staging layout, slice by slice, a CUDA copy on one side of it and
// a UCX put or get on the other. Staged transfers run one at a time on their own thread, so that
// one staging layout per block shape serves them all.
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include "common/thread_pool.hpp"
#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "kvbm/transfer/transfer_context.hpp"

namespace kvbm::remote {

class Stager {
 public:
  // The UCX side of one slice: pairs of (staging block, remote block) for a write, (remote
  // block, staging block) for a read; `last` for the transfer's last slice.
  using RemoteHop =
      std::function<TransferHandle(const LayoutPtr& staging, std::span<const BlockPair> pairs, bool last)>;

  // Staging is pinned memory (what the GPU copies at full speed); tests without a GPU pass System.
  Stager(std::shared_ptr<TransferContext> cuda, std::size_t staging_bytes, StorageKind staging = StorageKind::pinned());

  // Pairs are (local, remote) for a write and (remote, local) for a read.
  [[nodiscard]] TransferHandle start(const LayoutPtr& local, std::vector<BlockPair> pairs, bool write, RemoteHop hop);

 private:
  [[nodiscard]] Status run(const LayoutPtr& local, const std::vector<BlockPair>& pairs, bool write,
                           const RemoteHop& hop);
  [[nodiscard]] const LayoutPtr& staging_for(const Layout& local);

  std::shared_ptr<TransferContext> cuda_;
  std::size_t staging_bytes_;
  StorageKind staging_kind_;
  std::map<std::tuple<std::size_t, std::size_t, std::size_t>, LayoutPtr> staging_;  // by layers, outer, chunk bytes
  ThreadPool thread_{1};  // last: drains before the rest goes
};

}  // namespace kvbm::remote
