// kvbm.Layout.from_tensors: an engine's own KV tensors (torch, or anything with DLPack, the
// buffer protocol or __cuda_array_interface__) registered as a layout without a copy. The
// layout holds the tensors, so their memory lives as long as the layout and every transfer
// using it.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <fmt/format.h>

#include "bindings.hpp"
#include "layout_form.hpp"

namespace kvbm::python {
namespace {

// What kvbm needs of one tensor: where its bytes are and that they are what the layout says.
struct TensorMemory {
  void* data = nullptr;
  std::size_t bytes = 0;
  std::size_t itemsize = 0;
  std::vector<std::size_t> shape;
  StorageKind kind = StorageKind::system();
};

std::string shape_text(const std::vector<std::size_t>& shape) { return fmt::format("({})", fmt::join(shape, ", ")); }

// The tensor through __cuda_array_interface__ (version 2 or later): CUDA memory that offers no
// DLPack. Strides must be absent (C-contiguous) or those of a C-contiguous array.
TensorMemory from_cuda_array_interface(const nb::handle& tensor, std::size_t index) {
  const nb::dict interface = nb::cast<nb::dict>(tensor.attr("__cuda_array_interface__"));
  TensorMemory memory;
  const nb::tuple data = nb::cast<nb::tuple>(interface["data"]);
  memory.data = reinterpret_cast<void*>(nb::cast<std::uintptr_t>(data[0]));
  if (nb::cast<bool>(data[1])) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("tensor {} is read-only: kvbm writes into its layouts", index));
  }
  for (const nb::handle dim : nb::cast<nb::tuple>(interface["shape"])) memory.shape.push_back(nb::cast<std::size_t>(dim));
  const std::string typestr = nb::cast<std::string>(interface["typestr"]);
  memory.itemsize = std::stoul(typestr.substr(2));
  std::size_t expected_stride = memory.itemsize;
  if (interface.contains("strides") && !interface["strides"].is_none()) {
    const nb::tuple strides = nb::cast<nb::tuple>(interface["strides"]);
    for (std::size_t d = memory.shape.size(); d-- > 0;) {
      if (memory.shape[d] != 1 && nb::cast<std::size_t>(strides[d]) != expected_stride) {
        throw Error(ErrorCode::InvalidArgument, fmt::format("tensor {} is not contiguous (dimension {})", index, d));
      }
      expected_stride *= memory.shape[d];
    }
  }
  memory.bytes = memory.itemsize;
  for (const std::size_t dim : memory.shape) memory.bytes *= dim;
  int ordinal = 0;
  // The pointer's device: CUDA knows it (register_memory checks it again).
  if (interface.contains("device")) ordinal = nb::cast<int>(interface["device"]);
  memory.kind = StorageKind::device(static_cast<std::uint32_t>(ordinal));
  return memory;
}

TensorMemory from_dlpack(const nb::handle& tensor, std::size_t index, bool pinned) {
  nb::ndarray<> array;
  if (!nb::try_cast(tensor, array)) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tensor {} ({}) offers neither DLPack, the buffer protocol nor __cuda_array_interface__",
                            index, nb::cast<std::string>(nb::str(tensor.type()))));
  }
  TensorMemory memory;
  memory.data = array.data();
  memory.itemsize = array.itemsize();
  std::int64_t expected_stride = 1;
  for (std::size_t d = array.ndim(); d-- > 0;) {
    if (array.shape(d) != 1 && array.stride(d) != expected_stride) {
      throw Error(ErrorCode::InvalidArgument, fmt::format("tensor {} is not contiguous (dimension {})", index, d));
    }
    expected_stride *= static_cast<std::int64_t>(array.shape(d));
  }
  for (std::size_t d = 0; d < array.ndim(); ++d) memory.shape.push_back(array.shape(d));
  memory.bytes = array.nbytes();
  if (array.device_type() == nb::device::cuda::value) {
    memory.kind = StorageKind::device(static_cast<std::uint32_t>(array.device_id()));
  } else if (array.device_type() == nb::device::cpu::value || array.device_type() == nb::device::cuda_host::value) {
    memory.kind = pinned || array.device_type() == nb::device::cuda_host::value ? StorageKind::pinned() : StorageKind::system();
  } else {
    throw Error(ErrorCode::Unsupported, fmt::format("tensor {} is on DLPack device type {}, not CPU or CUDA", index,
                                                    array.device_type()));
  }
  return memory;
}

TensorMemory tensor_memory(const nb::handle& tensor, std::size_t index, bool pinned) {
  const bool has_dlpack = nb::hasattr(tensor, "__dlpack__");
  if (has_dlpack || !nb::hasattr(tensor, "__cuda_array_interface__")) return from_dlpack(tensor, index, pinned);
  try {
    return from_cuda_array_interface(tensor, index);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // a missing key, a value of the wrong type
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tensor {} has a malformed __cuda_array_interface__: {}", index, printable(e.what())));
  }
}

// The leading dimensions a tensor of this layout shows: (num_blocks, ...) for block-major
// memory, (outer_dim, num_blocks, ...) for vLLM's per-layer K/V tensors.
void check_shape(const TensorMemory& memory, std::size_t index, const LayoutConfig& config, LayoutForm form,
                 LayerOrder order, std::size_t expected_bytes) {
  if (memory.itemsize != config.dtype_bytes) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("tensor {} has {}-byte elements; the config says dtype_bytes={}",
                                                        index, memory.itemsize, config.dtype_bytes));
  }
  if (memory.bytes != expected_bytes) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tensor {} of shape {} holds {} bytes; this layout needs {} per tensor", index,
                            shape_text(memory.shape), memory.bytes, expected_bytes));
  }
  const bool outer_first = form == LayoutForm::LayerSeparate && order == LayerOrder::OuterContiguous && config.outer_dim > 1;
  const std::vector<std::size_t> leading =
      outer_first ? std::vector<std::size_t>{config.outer_dim, config.num_blocks} : std::vector<std::size_t>{config.num_blocks};
  if (memory.shape.size() < leading.size() ||
      !std::equal(leading.begin(), leading.end(), memory.shape.begin())) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("tensor {} of shape {} should begin with {}", index,
                                                        shape_text(memory.shape), shape_text(leading)));
  }
}

}  // namespace

PyLayout layout_from_tensors(const LayoutConfig& config, const nb::sequence& tensors, const std::string& form,
                             const std::optional<std::string>& order, bool pinned) {
  config.validate();
  const auto [layout_form, layer_order] = parse_form(form, order);
  const std::size_t count = nb::len(tensors);
  const std::size_t wanted = layout_form == LayoutForm::FullyContiguous ? 1 : config.num_layers;
  if (count != wanted) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} tensors given; a {} layout of this config takes {}", count, form, wanted));
  }
  std::vector<TensorMemory> memories;
  for (std::size_t i = 0; i < count; ++i) memories.push_back(tensor_memory(tensors[i], i, pinned));
  for (const TensorMemory& memory : memories) {
    if (memory.kind != memories.front().kind) {
      throw Error(ErrorCode::InvalidArgument, fmt::format("tensors on {} and {}: a layout lives on one device",
                                                          kind_name(memories.front().kind), kind_name(memory.kind)));
    }
  }
  const StorageKind kind = memories.front().kind;
  const std::size_t expected = layout_form == LayoutForm::FullyContiguous
                                   ? Layout::required_bytes_fully_contiguous(config, kind)
                                   : Layout::required_bytes_per_layer(config, kind);
  for (std::size_t i = 0; i < count; ++i) check_shape(memories[i], i, config, layout_form, layer_order, expected);
  std::vector<RegionPtr> regions;
  for (const TensorMemory& memory : memories) {
    regions.push_back(Region::register_memory(memory.data, memory.bytes, kind));
  }
  LayoutPtr inner = layout_form == LayoutForm::FullyContiguous
                        ? Layout::fully_contiguous(config, regions.front())
                        : Layout::layer_separate(config, std::move(regions), layer_order);
  // The layout's last reference, wherever it is dropped, releases the tensors after it.
  auto keep = std::make_shared<PythonRef>(nb::borrow<nb::object>(tensors));
  const Layout* raw = inner.get();
  return PyLayout{LayoutPtr(raw, [inner = std::move(inner), keep = std::move(keep)](const Layout*) mutable {
    inner.reset();
    keep.reset();
  })};
}

}  // namespace kvbm::python
