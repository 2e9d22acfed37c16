#pragma once
// The property check every transfer path must pass: random bytes in scattered source blocks,
// a poisoned destination, one transfer, then every byte compared: destination blocks hold the
// source bytes, every other destination block still holds the poison, the source is unchanged.
#include <functional>
#include <span>
#include <string>

#include "kvbm/transfer/transfer_context.hpp"
#include "support/chunk_io.hpp"

namespace kvbm::testing {

struct LayoutChoice {
  LayoutForm form = LayoutForm::FullyContiguous;
  LayerOrder order = LayerOrder::BlockContiguous;
  std::size_t host_offset = 0;  // fully contiguous host layouts only: start this far into the region
  [[nodiscard]] std::string name() const;
};

// The forms tested everywhere: fully contiguous (aligned and at an odd offset) and both
// layer-separate orders.
[[nodiscard]] std::vector<LayoutChoice> all_layout_choices();

[[nodiscard]] LayoutPtr make_layout(const LayoutConfig& config, StorageKind kind, const LayoutChoice& choice,
                                    const std::string& disk_dir);

// Runs the property check; returns a description of the first mismatch, or "" when all match.
[[nodiscard]] std::string check_roundtrip(TransferContext& context, const LayoutPtr& src, const LayoutPtr& dst,
                                          std::size_t block_count, std::uint64_t seed);
// The same through a prepared path.
[[nodiscard]] std::string check_roundtrip(const TransferPath& path, std::size_t block_count, std::uint64_t seed);
// The same with `move` starting the transfer of the pairs from src to dst.
[[nodiscard]] std::string check_roundtrip_with(const std::function<TransferHandle(std::span<const BlockPair>)>& move,
                                               const LayoutPtr& src, const LayoutPtr& dst, std::size_t block_count,
                                               std::uint64_t seed);

// The property check for layers [first, first + count) alone: random bytes in every layer of
// scattered source blocks, the whole destination poisoned, one transfer between the two
// layouts' layer views (`prepared`: through a prepared path), then every byte of every layer
// compared: the view's layers of the destination blocks hold the source bytes, every other
// chunk still holds the poison.
[[nodiscard]] std::string check_layer_view_roundtrip(TransferContext& context, const LayoutPtr& src,
                                                     const LayoutPtr& dst, std::size_t first, std::size_t count,
                                                     std::size_t block_count, std::uint64_t seed, bool prepared);

// The property check from eight threads at once through one context, each with its own pinned
// and device layouts (device ones in `device_choice`): odd threads onboard, even ones offload.
// Returns each thread's check_roundtrip result.
[[nodiscard]] std::vector<std::string> concurrent_gpu_roundtrips(TransferContext& context, const LayoutConfig& config,
                                                                 const LayoutChoice& device_choice,
                                                                 std::size_t block_count, const std::string& disk_dir);

// A fresh directory under /tmp for disk regions, removed when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace kvbm::testing
