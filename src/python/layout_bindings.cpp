// kvbm.LayoutConfig and kvbm.Layout: allocation, shape, and views of blocks as arrays (buffer
// protocol and DLPack) that share the layout's memory and keep it alive.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <fmt/format.h>

#include "bindings.hpp"
#include "layout_form.hpp"

namespace kvbm::python {
namespace {

// A uint8 array over the layout's memory from `at`, shaped `shape` with byte strides `strides`,
// that holds the layout so the memory outlives every view of it: a numpy array for host
// layouts (buffer protocol and DLPack), a torch tensor for GPU layouts.
nb::object view(const PyLayout& self, const ChunkLocation& at, std::vector<std::size_t> shape,
                std::vector<std::int64_t> strides) {
  const StorageKind kind = self.layout->kind();
  if (kind.is_disk()) {
    throw Error(ErrorCode::Unsupported, "a disk layout has no memory to view: transfer its blocks to a host layout");
  }
  std::byte* data = at.region->data() + at.offset;
  auto* keep = new LayoutPtr(self.layout);
  nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<LayoutPtr*>(p); });
  if (kind.is_device()) {
    return nb::cast(nb::ndarray<nb::pytorch, std::uint8_t>(data, shape.size(), shape.data(), owner, strides.data(),
                                                           nb::dtype<std::uint8_t>(), nb::device::cuda::value,
                                                           static_cast<int>(kind.index())));
  }
  return nb::cast(nb::ndarray<nb::numpy, std::uint8_t>(data, shape.size(), shape.data(), owner, strides.data()));
}

std::size_t checked_index(std::size_t value, std::size_t bound, const char* name) {
  if (value >= bound) {
    throw Error(ErrorCode::OutOfRange, fmt::format("{} {} is out of range: the layout has {}", name, value, bound));
  }
  return value;
}

}  // namespace

void bind_layouts(nb::module_& m) {
  nb::class_<LayoutConfig>(m, "LayoutConfig", "The shape of a KV cache: blocks x layers x outer x page x inner x dtype bytes.")
      .def(
          "__init__",
          [](LayoutConfig* self, std::size_t num_blocks, std::size_t num_layers, std::size_t outer_dim,
             std::size_t page_size, std::size_t inner_dim, std::size_t dtype_bytes) {
            LayoutConfig config{num_blocks, num_layers, outer_dim, page_size, inner_dim, dtype_bytes};
            config.validate();
            new (self) LayoutConfig(config);
          },
          nb::kw_only(), nb::arg("num_blocks"), nb::arg("num_layers"), nb::arg("outer_dim") = 2,
          nb::arg("page_size"), nb::arg("inner_dim"), nb::arg("dtype_bytes") = 2)
      .def_ro("num_blocks", &LayoutConfig::num_blocks)
      .def_ro("num_layers", &LayoutConfig::num_layers)
      .def_ro("outer_dim", &LayoutConfig::outer_dim)
      .def_ro("page_size", &LayoutConfig::page_size)
      .def_ro("inner_dim", &LayoutConfig::inner_dim)
      .def_ro("dtype_bytes", &LayoutConfig::dtype_bytes)
      .def_prop_ro("chunk_bytes", &LayoutConfig::chunk_bytes, "page_size x inner_dim x dtype_bytes: one (block, layer, outer) cell")
      .def("__repr__", [](const LayoutConfig& c) { return "LayoutConfig(" + c.to_string() + ")"; });

  nb::class_<PyLayout>(m, "Layout", "Where every chunk of a KV cache lives: host, pinned, GPU or disk.")
      .def_static(
          "allocate",
          [](const LayoutConfig& config, const std::string& kind, const std::string& form,
             const std::optional<std::string>& order, const std::optional<std::string>& dir) {
            const StorageKind storage = StorageKind::parse(kind);
            const auto [layout_form, layer_order] = parse_form(form, order);
            DiskFileOptions disk;
            if (dir) {
              if (!storage.is_disk()) throw Error(ErrorCode::InvalidArgument, "dir applies to disk layouts only");
              disk.directory = *dir;
            }
            nb::gil_scoped_release released;
            return PyLayout{Layout::allocate(config, storage, layout_form, layer_order, disk)};
          },
          nb::arg("config"), nb::arg("kind"), nb::kw_only(), nb::arg("form") = "fully_contiguous",
          nb::arg("order") = nb::none(), nb::arg("dir") = nb::none(),
          "Allocates a layout of `kind` ('system', 'pinned', 'device:N', 'disk'); disk files go in `dir` and are removed with the layout.")
      .def_static("from_tensors", &layout_from_tensors, nb::arg("config"), nb::arg("tensors"), nb::kw_only(),
                  nb::arg("form") = "fully_contiguous", nb::arg("order") = nb::none(), nb::arg("pinned") = false,
                  "Registers existing tensors as a layout without copying: one tensor for fully_contiguous, one per "
                  "layer for layer_separate (order='outer' for vLLM's (2, num_blocks, ...) per-layer tensors). "
                  "Checks element size, bytes, leading dimensions, device and contiguity; `pinned` says CPU "
                  "tensors are in pinned memory. The layout keeps the tensors alive.")
      .def_prop_ro("config", [](const PyLayout& self) { return self.layout->config(); })
      .def_prop_ro("kind", [](const PyLayout& self) { return kind_name(self.layout->kind()); })
      .def_prop_ro("form", [](const PyLayout& self) {
        if (self.layout->form() == LayoutForm::FullyContiguous) return std::string("fully_contiguous");
        return self.layout->order() == LayerOrder::BlockContiguous ? std::string("ls-block") : std::string("ls-outer");
      })
      .def_prop_ro("num_blocks", [](const PyLayout& self) { return self.layout->config().num_blocks; })
      .def(
          "block",
          [](const PyLayout& self, std::size_t block) {
            const Layout& layout = *self.layout;
            const LayoutConfig& c = layout.config();
            checked_index(block, c.num_blocks, "block");
            if (layout.is_layer_view()) {
              throw Error(ErrorCode::InvalidArgument,
                          fmt::format("block {} of a layer view is not one run of bytes: view it a layer at a time "
                                      "with chunk({}, layer)",
                                      block, block));
            }
            if (layout.form() != LayoutForm::FullyContiguous) {
              throw Error(ErrorCode::InvalidArgument,
                          fmt::format("block {} of a layer-separate layout spans {} regions: view it a layer at a time "
                                      "with chunk({}, layer)",
                                      block, c.num_layers, block));
            }
            const ChunkLocation first = layout.locate(block, 0, 0);
            const auto stride = static_cast<std::int64_t>(layout.chunk_stride());
            return view(self, first, {c.num_layers, c.outer_dim, layout.chunk_bytes()},
                        {stride * static_cast<std::int64_t>(c.outer_dim), stride, 1});
          },
          nb::arg("block"),
          "A writable uint8 view (layers, outer, chunk_bytes) of one block of a fully contiguous layout: a numpy "
          "array for host layouts, a torch tensor for GPU ones.")
      .def(
          "chunk",
          [](const PyLayout& self, std::size_t block, std::size_t layer) {
            const Layout& layout = *self.layout;
            const LayoutConfig& c = layout.config();
            checked_index(block, c.num_blocks, "block");
            checked_index(layer, c.num_layers, "layer");
            const ChunkLocation first = layout.locate(block, layer, 0);
            std::int64_t outer_stride = static_cast<std::int64_t>(layout.chunk_stride());
            if (c.outer_dim > 1) {
              const ChunkLocation second = layout.locate(block, layer, 1);
              outer_stride = static_cast<std::int64_t>(second.offset) - static_cast<std::int64_t>(first.offset);
            }
            return view(self, first, {c.outer_dim, layout.chunk_bytes()}, {outer_stride, 1});
          },
          nb::arg("block"), nb::arg("layer"),
          "A writable uint8 view (outer, chunk_bytes) of one block's chunks in one layer, in any form.")
      .def(
          "layers",
          [](const PyLayout& self, std::size_t first, std::size_t count) { return PyLayout{self.layout->layers(first, count)}; },
          nb::arg("first"), nb::arg("count") = 1,
          "Layers [first, first + count) of this layout, over the same memory: a transfer between two such views "
          "moves only those layers (loading KV a layer at a time). The view keeps the layout's memory alive.")
      .def("__repr__", [](const PyLayout& self) { return "Layout(" + self.layout->describe() + ")"; });
}

}  // namespace kvbm::python
