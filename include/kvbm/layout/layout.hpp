#pragma once
// Where each chunk (block, layer, outer) of a KV cache lives inside its storage regions.
//
//  FullyContiguous: one region, ordered [block][layer][outer][page x inner].
//  LayerSeparate:   one region per layer, ordered either
//                     BlockContiguous [block][outer][page x inner]   or
//                     OuterContiguous [outer][block][page x inner]   (vLLM-style K and V tensors).
//
// Chunks sit `chunk_stride()` bytes apart: tightly packed in memory, and rounded up to 4 KiB on
// disk so every chunk starts and ends on an O_DIRECT boundary.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "kvbm/layout/layout_config.hpp"
#include "kvbm/memory/region.hpp"

namespace kvbm {

enum class LayoutForm { FullyContiguous, LayerSeparate };
enum class LayerOrder { BlockContiguous, OuterContiguous };

struct ChunkLocation {
  const Region* region = nullptr;
  std::size_t offset = 0;  // from the start of the region
  std::size_t bytes = 0;
};

// Where chunk (block, layer, outer) sits in a layout of this shape: which of its regions, and
// the offset inside it. Shared by Layout and by layouts another process describes (remote).
struct ChunkPosition {
  std::size_t region = 0;
  std::size_t offset = 0;
};
[[nodiscard]] inline ChunkPosition chunk_position(const LayoutConfig& config, LayoutForm form, LayerOrder order,
                                                  std::size_t base_offset, std::size_t chunk_stride,
                                                  std::size_t block, std::size_t layer, std::size_t outer) {
  const std::size_t outer_dim = config.outer_dim;
  if (form == LayoutForm::FullyContiguous) {
    const std::size_t index = (block * config.num_layers + layer) * outer_dim + outer;
    return {0, base_offset + index * chunk_stride};
  }
  const std::size_t index =
      order == LayerOrder::BlockContiguous ? block * outer_dim + outer : outer * config.num_blocks + block;
  return {layer, index * chunk_stride};
}

class Layout;
using LayoutPtr = std::shared_ptr<const Layout>;

class Layout {
 public:
  // Bytes a region needs to hold this layout (the whole cache, or one layer of it).
  [[nodiscard]] static std::size_t required_bytes_fully_contiguous(const LayoutConfig& config, StorageKind kind);
  [[nodiscard]] static std::size_t required_bytes_per_layer(const LayoutConfig& config, StorageKind kind);

  // Places a layout in regions the caller provides. `offset` is where the layout begins inside
  // the region (4 KiB-aligned for disk). Errors name the region that is too small.
  [[nodiscard]] static LayoutPtr fully_contiguous(const LayoutConfig& config, RegionPtr region,
                                                  std::size_t offset = 0);
  [[nodiscard]] static LayoutPtr layer_separate(const LayoutConfig& config, std::vector<RegionPtr> layer_regions,
                                                LayerOrder order = LayerOrder::BlockContiguous);

  // Allocates owned regions of `kind` and places the layout in them.
  [[nodiscard]] static LayoutPtr allocate(const LayoutConfig& config, StorageKind kind, LayoutForm form,
                                          LayerOrder order = LayerOrder::BlockContiguous,
                                          const DiskFileOptions& disk = {});

  [[nodiscard]] const LayoutConfig& config() const { return config_; }
  [[nodiscard]] LayoutForm form() const { return form_; }
  [[nodiscard]] LayerOrder order() const { return order_; }
  [[nodiscard]] StorageKind kind() const { return regions_.front()->kind(); }
  [[nodiscard]] std::size_t chunk_bytes() const { return chunk_bytes_; }
  [[nodiscard]] std::size_t chunk_stride() const { return chunk_stride_; }
  [[nodiscard]] const std::vector<RegionPtr>& regions() const { return regions_; }
  // Where the layout begins in its first region (fully contiguous layouts).
  [[nodiscard]] std::size_t base_offset() const { return base_offset_; }

  // Where chunk (block, layer, outer) lives. Throws OutOfRange naming the index past its bound.
  [[nodiscard]] ChunkLocation locate(std::size_t block, std::size_t layer, std::size_t outer) const;
  // The same without bounds checks, for hot loops over indices validated once beforehand.
  [[nodiscard]] ChunkLocation locate_unchecked(std::size_t block, std::size_t layer, std::size_t outer) const;

  // Layers [first, first + count) of this layout, over the same storage: a layout of `count`
  // layers a block whose layer i is this layout's layer first + i. A transfer between two views
  // of one shape moves those layers only (an engine's forward pass loads its KV a layer at a
  // time). Throws OutOfRange naming the layer past this layout's num_layers.
  [[nodiscard]] LayoutPtr layers(std::size_t first, std::size_t count) const;
  // Whether this layout shows only some of its storage's layers (layers()).
  [[nodiscard]] bool is_layer_view() const { return first_layer_ != 0 || storage_.num_layers != config_.num_layers; }

  [[nodiscard]] std::string describe() const;

 private:
  Layout(const LayoutConfig& config, LayoutForm form, LayerOrder order, std::vector<RegionPtr> regions,
         std::size_t base_offset);
  // A view: `config` shows layers [first_layer, first_layer + config.num_layers) of `storage`.
  Layout(const LayoutConfig& config, const LayoutConfig& storage, std::size_t first_layer, LayoutForm form,
         LayerOrder order, std::vector<RegionPtr> regions, std::size_t base_offset);

  LayoutConfig config_;
  LayoutConfig storage_;        // the shape the regions hold: config_ but for a view's num_layers
  std::size_t first_layer_ = 0;  // the storage layer that is this layout's layer 0
  LayoutForm form_;
  LayerOrder order_;
  std::vector<RegionPtr> regions_;
  std::size_t base_offset_;
  std::size_t chunk_bytes_;
  std::size_t chunk_stride_;
};

// Inline: transfers call it twice per chunk, tens of thousands of times per request.
inline ChunkLocation Layout::locate_unchecked(std::size_t block, std::size_t layer, std::size_t outer) const {
  const ChunkPosition position =
      chunk_position(storage_, form_, order_, base_offset_, chunk_stride_, block, first_layer_ + layer, outer);
  return {regions_[position.region].get(), position.offset, chunk_bytes_};
}

[[nodiscard]] std::string to_string(LayoutForm form);
[[nodiscard]] std::string to_string(LayerOrder order);

}  // namespace kvbm
