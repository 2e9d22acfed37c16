#include "kvbm/layout/layout.hpp"

#include "common/checked_math.hpp"
#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {
namespace {

std::size_t stride_for(const LayoutConfig& config, StorageKind kind) {
  const std::size_t bytes = config.chunk_bytes();
  return kind.is_disk() ? round_up(bytes, kDirectIoAlignment) : bytes;
}

void require_fits(const Region& region, std::size_t offset, std::size_t needed, std::string_view what) {
  const std::size_t end = checked_add(offset, needed, "layout end offset");
  if (end > region.size()) {
    throw make_error(ErrorCode::OutOfRange, "{} needs {} bytes from offset {} but the region is {} bytes: {}", what,
                     needed, offset, region.size(), region.describe());
  }
}

}  // namespace

std::size_t Layout::required_bytes_fully_contiguous(const LayoutConfig& config, StorageKind kind) {
  config.validate();
  return checked_mul(config.num_chunks(), stride_for(config, kind), "fully contiguous layout size");
}

std::size_t Layout::required_bytes_per_layer(const LayoutConfig& config, StorageKind kind) {
  config.validate();
  return checked_mul(checked_mul(config.num_blocks, config.outer_dim, "layer size"), stride_for(config, kind),
                     "layer-separate layout size per layer");
}

Layout::Layout(const LayoutConfig& config, LayoutForm form, LayerOrder order, std::vector<RegionPtr> regions,
               std::size_t base_offset)
    : Layout(config, config, 0, form, order, std::move(regions), base_offset) {}

Layout::Layout(const LayoutConfig& config, const LayoutConfig& storage, std::size_t first_layer, LayoutForm form,
               LayerOrder order, std::vector<RegionPtr> regions, std::size_t base_offset)
    : config_(config), storage_(storage), first_layer_(first_layer), form_(form), order_(order),
      regions_(std::move(regions)), base_offset_(base_offset), chunk_bytes_(config.chunk_bytes()),
      chunk_stride_(stride_for(config, regions_.front()->kind())) {}

LayoutPtr Layout::fully_contiguous(const LayoutConfig& config, RegionPtr region, std::size_t offset) {
  if (!region) throw make_error(ErrorCode::InvalidArgument, "fully contiguous layout: region is null");
  const std::size_t needed = required_bytes_fully_contiguous(config, region->kind());
  if (region->kind().is_disk() && offset % kDirectIoAlignment != 0) {
    throw make_error(ErrorCode::InvalidArgument, "disk layout offset {} is not a multiple of {} (O_DIRECT)", offset,
                     kDirectIoAlignment);
  }
  require_fits(*region, offset, needed, "fully contiguous layout " + config.to_string());
  return LayoutPtr(new Layout(config, LayoutForm::FullyContiguous, LayerOrder::BlockContiguous, {std::move(region)},
                              offset));
}

LayoutPtr Layout::layer_separate(const LayoutConfig& config, std::vector<RegionPtr> layer_regions, LayerOrder order) {
  config.validate();
  if (layer_regions.size() != config.num_layers) {
    throw make_error(ErrorCode::InvalidArgument, "layer-separate layout: {} regions given for num_layers={}",
                     layer_regions.size(), config.num_layers);
  }
  for (std::size_t layer = 0; layer < layer_regions.size(); ++layer) {
    const RegionPtr& region = layer_regions[layer];
    if (!region) throw make_error(ErrorCode::InvalidArgument, "layer-separate layout: region of layer {} is null", layer);
    if (region->kind() != layer_regions.front()->kind()) {
      throw make_error(ErrorCode::InvalidArgument, "layer-separate layout: layer {} is {} but layer 0 is {}", layer,
                       region->kind().to_string(), layer_regions.front()->kind().to_string());
    }
    require_fits(*region, 0, required_bytes_per_layer(config, region->kind()), fmt::format("layer {}", layer));
  }
  return LayoutPtr(new Layout(config, LayoutForm::LayerSeparate, order, std::move(layer_regions), 0));
}

LayoutPtr Layout::allocate(const LayoutConfig& config, StorageKind kind, LayoutForm form, LayerOrder order,
                           const DiskFileOptions& disk) {
  if (form == LayoutForm::FullyContiguous) {
    return fully_contiguous(config, Region::allocate(kind, required_bytes_fully_contiguous(config, kind), disk));
  }
  const std::size_t per_layer = required_bytes_per_layer(config, kind);
  std::vector<RegionPtr> regions;
  regions.reserve(config.num_layers);
  for (std::size_t layer = 0; layer < config.num_layers; ++layer) {
    DiskFileOptions layer_disk = disk;
    if (disk.keep_path) layer_disk.keep_path = fmt::format("{}.layer{}", *disk.keep_path, layer);
    regions.push_back(Region::allocate(kind, per_layer, layer_disk));
  }
  return layer_separate(config, std::move(regions), order);
}

ChunkLocation Layout::locate(std::size_t block, std::size_t layer, std::size_t outer) const {
  if (block >= config_.num_blocks) {
    throw make_error(ErrorCode::OutOfRange, "block index {} is out of range (num_blocks={})", block, config_.num_blocks);
  }
  if (layer >= config_.num_layers) {
    throw make_error(ErrorCode::OutOfRange, "layer index {} is out of range (num_layers={})", layer, config_.num_layers);
  }
  if (outer >= config_.outer_dim) {
    throw make_error(ErrorCode::OutOfRange, "outer index {} is out of range (outer_dim={})", outer, config_.outer_dim);
  }
  return locate_unchecked(block, layer, outer);
}

LayoutPtr Layout::layers(std::size_t first, std::size_t count) const {
  if (count == 0) throw make_error(ErrorCode::InvalidArgument, "a layer view of 0 layers (first={})", first);
  if (first >= config_.num_layers || count > config_.num_layers - first) {
    throw make_error(ErrorCode::OutOfRange, "layers {}..{} are out of range (num_layers={})", first, first + count - 1,
                     config_.num_layers);
  }
  LayoutConfig view_config = config_;
  view_config.num_layers = count;
  return LayoutPtr(new Layout(view_config, storage_, first_layer_ + first, form_, order_, regions_, base_offset_));
}

std::string Layout::describe() const {
  std::string form = form_ == LayoutForm::FullyContiguous ? "fully contiguous"
                                                          : "layer-separate " + to_string(order_);
  std::string text = fmt::format("{} {} layout {}", kind().to_string(), form, config_.to_string());
  if (is_layer_view()) {
    text += fmt::format(" (layers {}..{} of {})", first_layer_, first_layer_ + config_.num_layers - 1,
                        storage_.num_layers);
  }
  return text;
}

std::string to_string(LayoutForm form) {
  return form == LayoutForm::FullyContiguous ? "fully_contiguous" : "layer_separate";
}

std::string to_string(LayerOrder order) {
  return order == LayerOrder::BlockContiguous ? "block_contiguous" : "outer_contiguous";
}

}  // namespace kvbm
