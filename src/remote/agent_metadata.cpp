#include "remote/agent_metadata.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/make_error.hpp"

namespace kvbm::remote {
namespace {

constexpr std::string_view kMagic = "KVBMAGT1";

class Writer {
 public:
  void u8(std::uint8_t value) { bytes_.push_back(static_cast<char>(value)); }
  void u32(std::uint32_t value) { raw(&value, sizeof value); }
  void u64(std::uint64_t value) { raw(&value, sizeof value); }
  void text(std::string_view value) {
    u32(static_cast<std::uint32_t>(value.size()));
    bytes_.append(value);
  }
  void raw(const void* data, std::size_t size) { bytes_.append(static_cast<const char*>(data), size); }
  std::string take() { return std::move(bytes_); }

 private:
  std::string bytes_;
};

// Reads little-endian fields; every read names the field that would run past the end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  std::uint8_t u8(const char* field) { return static_cast<std::uint8_t>(take(1, field)[0]); }
  std::uint32_t u32(const char* field) { return load<std::uint32_t>(field); }
  std::uint64_t u64(const char* field) { return load<std::uint64_t>(field); }
  std::string text(const char* field, std::size_t max_bytes) {
    const std::uint32_t size = u32(field);
    if (size > max_bytes) {
      throw make_error(ErrorCode::InvalidArgument, "agent metadata: {} of {} bytes (at most {})", field, size,
                       max_bytes);
    }
    return std::string(take(size, field));
  }
  std::string_view take(std::size_t size, const char* field) {
    if (size > bytes_.size() - at_) {
      throw make_error(ErrorCode::InvalidArgument, "agent metadata ends inside {} (offset {} of {} bytes)", field, at_,
                       bytes_.size());
    }
    const std::string_view out = bytes_.substr(at_, size);
    at_ += size;
    return out;
  }
  [[nodiscard]] std::size_t left() const { return bytes_.size() - at_; }

 private:
  template <typename T>
  T load(const char* field) {
    T value;
    std::memcpy(&value, take(sizeof value, field).data(), sizeof value);
    return value;
  }
  std::string_view bytes_;
  std::size_t at_ = 0;
};

std::uint8_t kind_code(StorageKind kind) { return static_cast<std::uint8_t>(kind.type()); }

StorageKind kind_from(std::uint8_t code, std::uint32_t index) {
  const bool host = code == static_cast<std::uint8_t>(StorageKind::Type::System) ||
                    code == static_cast<std::uint8_t>(StorageKind::Type::Pinned);
  // One encoding per metadata: host memory has no ordinal, so it must be written as 0.
  if (host && index != 0) {
    throw make_error(ErrorCode::InvalidArgument, "agent metadata: host storage kind {} with device ordinal {} (must be 0)",
                     code, index);
  }
  switch (code) {
    case static_cast<std::uint8_t>(StorageKind::Type::System): return StorageKind::system();
    case static_cast<std::uint8_t>(StorageKind::Type::Pinned): return StorageKind::pinned();
    case static_cast<std::uint8_t>(StorageKind::Type::Device): return StorageKind::device(index);
    default:
      throw make_error(ErrorCode::InvalidArgument,
                       "agent metadata: storage kind {} cannot be reached remotely (System, Pinned or Device)", code);
  }
}

std::uint64_t bounded(std::uint64_t value, std::uint64_t max, const char* field) {
  if (value > max) throw make_error(ErrorCode::InvalidArgument, "agent metadata: {} is {} (at most {})", field, value, max);
  return value;
}

// The shape must fit its regions: every chunk a checked transfer can name lies inside them.
void check_fits(const ExportedLayout& layout) {
  const LayoutConfig& config = layout.info.config;
  const bool contiguous = layout.info.form == LayoutForm::FullyContiguous;
  const std::size_t expected = contiguous ? 1 : config.num_layers;
  if (layout.regions.size() != expected) {
    throw make_error(ErrorCode::InvalidArgument, "agent metadata: layout {} is {} with {} layers but has {} regions",
                     layout.info.id, to_string(layout.info.form), config.num_layers, layout.regions.size());
  }
  const std::size_t needed = contiguous ? Layout::required_bytes_fully_contiguous(config, layout.info.kind)
                                        : Layout::required_bytes_per_layer(config, layout.info.kind);
  for (std::size_t r = 0; r < layout.regions.size(); ++r) {
    const ExportedRegion& region = layout.regions[r];
    const std::uint64_t offset = contiguous ? layout.base_offset : 0;
    if (region.bytes < needed || region.bytes - needed < offset) {
      throw make_error(ErrorCode::InvalidArgument,
                       "agent metadata: region {} of layout {} has {} bytes, its shape needs {} from offset {}", r,
                       layout.info.id, region.bytes, needed, offset);
    }
    if (region.address > std::numeric_limits<std::uint64_t>::max() - region.bytes) {
      throw make_error(ErrorCode::InvalidArgument, "agent metadata: region {} of layout {} wraps the address space", r,
                       layout.info.id);
    }
    if (region.remote_key.empty()) {
      throw make_error(ErrorCode::InvalidArgument, "agent metadata: region {} of layout {} has no remote key", r,
                       layout.info.id);
    }
  }
}

ExportedLayout read_layout(Reader& in) {
  ExportedLayout layout;
  layout.info.id = in.u32("layout id");
  LayoutConfig& config = layout.info.config;
  config.num_blocks = in.u64("num_blocks");
  config.num_layers = in.u64("num_layers");
  config.outer_dim = in.u64("outer_dim");
  config.page_size = in.u64("page_size");
  config.inner_dim = in.u64("inner_dim");
  config.dtype_bytes = in.u64("dtype_bytes");
  try {
    config.validate();
  } catch (const Error& error) {
    throw make_error(ErrorCode::InvalidArgument, "agent metadata: layout {}: {}", layout.info.id, error.message());
  }
  const std::uint8_t form = in.u8("layout form");
  if (form > 1) throw make_error(ErrorCode::InvalidArgument, "agent metadata: layout form {} (0 or 1)", form);
  layout.info.form = form == 0 ? LayoutForm::FullyContiguous : LayoutForm::LayerSeparate;
  const std::uint8_t order = in.u8("layer order");
  if (order > 1) throw make_error(ErrorCode::InvalidArgument, "agent metadata: layer order {} (0 or 1)", order);
  layout.info.order = order == 0 ? LayerOrder::BlockContiguous : LayerOrder::OuterContiguous;
  const std::uint8_t kind = in.u8("storage kind");
  layout.info.kind = kind_from(kind, in.u32("device ordinal"));
  layout.base_offset = in.u64("base offset");
  const auto regions = bounded(in.u32("region count"), kMaxRegionsPerLayout, "region count");
  for (std::uint64_t r = 0; r < regions; ++r) {
    ExportedRegion region;
    region.address = in.u64("region address");
    region.bytes = in.u64("region size");
    region.remote_key = in.text("remote key", kMaxRemoteKeyBytes);
    layout.regions.push_back(std::move(region));
  }
  check_fits(layout);
  return layout;
}

}  // namespace

void check_agent_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxAgentNameBytes) {
    throw make_error(ErrorCode::InvalidArgument, "agent name of {} bytes (must be 1 to {})", name.size(),
                     kMaxAgentNameBytes);
  }
  const auto bad = std::find_if(name.begin(), name.end(), [](char c) { return c < 0x21 || c > 0x7e; });
  if (bad != name.end()) {
    throw make_error(ErrorCode::InvalidArgument, "agent name has byte 0x{:02x} at {} (printable ASCII only)",
                     static_cast<unsigned char>(*bad), bad - name.begin());
  }
}

std::string encode(const AgentMetadata& metadata) {
  Writer out;
  out.raw(kMagic.data(), kMagic.size());
  out.text(metadata.name);
  out.text(metadata.worker_address);
  out.u32(static_cast<std::uint32_t>(metadata.layouts.size()));
  for (const ExportedLayout& layout : metadata.layouts) {
    const LayoutConfig& config = layout.info.config;
    out.u32(layout.info.id);
    for (std::size_t field : {config.num_blocks, config.num_layers, config.outer_dim, config.page_size,
                              config.inner_dim, config.dtype_bytes}) {
      out.u64(field);
    }
    out.u8(layout.info.form == LayoutForm::FullyContiguous ? 0 : 1);
    out.u8(layout.info.order == LayerOrder::BlockContiguous ? 0 : 1);
    out.u8(kind_code(layout.info.kind));
    out.u32(layout.info.kind.index());
    out.u64(layout.base_offset);
    out.u32(static_cast<std::uint32_t>(layout.regions.size()));
    for (const ExportedRegion& region : layout.regions) {
      out.u64(region.address);
      out.u64(region.bytes);
      out.text(region.remote_key);
    }
  }
  return out.take();
}

AgentMetadata decode(std::string_view bytes) {
  Reader in(bytes);
  if (in.take(kMagic.size(), "magic") != kMagic) {
    throw make_error(ErrorCode::InvalidArgument, "agent metadata does not start with {}", kMagic);
  }
  AgentMetadata metadata;
  metadata.name = in.text("agent name", kMaxAgentNameBytes);
  check_agent_name(metadata.name);
  metadata.worker_address = in.text("worker address", kMaxWorkerAddressBytes);
  if (metadata.worker_address.empty()) throw make_error(ErrorCode::InvalidArgument, "agent metadata: empty worker address");
  const auto layouts = bounded(in.u32("layout count"), kMaxExportedLayouts, "layout count");
  for (std::uint64_t l = 0; l < layouts; ++l) {
    ExportedLayout layout = read_layout(in);
    const bool repeated = std::any_of(metadata.layouts.begin(), metadata.layouts.end(),
                                      [&](const ExportedLayout& other) { return other.info.id == layout.info.id; });
    if (repeated) throw make_error(ErrorCode::InvalidArgument, "agent metadata: layout id {} appears twice", layout.info.id);
    metadata.layouts.push_back(std::move(layout));
  }
  if (in.left() != 0) throw make_error(ErrorCode::InvalidArgument, "agent metadata: {} bytes after the end", in.left());
  return metadata;
}

}  // namespace kvbm::remote
