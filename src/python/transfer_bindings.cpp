// kvbm.TransferContext, kvbm.TransferPath, kvbm.Handle and kvbm.plan. Work starts with the GIL
// released; a handle's wait releases it too, and a completion callback takes it again.
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <chrono>

#include "bindings.hpp"
#include "callback_thread.hpp"
#include "kvbm/transfer/strategy.hpp"
#include "layout_form.hpp"

namespace kvbm::python {
namespace {

// wait(timeout=None): True once finished (kvbm.Error if it failed), False if still running.
bool wait(PyHandle& self, std::optional<double> timeout) {
  std::optional<Status> outcome;
  {
    nb::gil_scoped_release released;
    if (!timeout) {
      outcome = self.handle->wait();
    } else {
      if (*timeout < 0) throw Error(ErrorCode::InvalidArgument, "timeout must be >= 0 seconds");
      outcome = self.handle->wait_for(std::chrono::duration<double>(*timeout));
    }
  }
  if (!outcome) return false;
  outcome->throw_if_error();
  return true;
}

// Calls `callback(error_or_None)` once the transfer ends, on the module's callback thread
// (callback_thread.hpp), holding the GIL: a slow callback delays other callbacks, never a
// transfer. For asyncio (kvbm._aio): the callback hands the outcome to the event loop.
void add_done_callback(PyHandle& self, nb::object callback) {
  auto held = std::make_shared<PythonRef>(std::move(callback));
  self.handle->on_complete([held](const Status& status) {
    run_on_callback_thread([held, status] {
      if (!Py_IsInitialized()) return;
      nb::gil_scoped_acquire gil;
      try {
        held->get()(status.ok() ? nb::none() : python_error(status.error()));
      } catch (nb::python_error& error) {
        error.discard_as_unraisable("kvbm transfer done-callback");
      }
    });
  });
}

}  // namespace

void bind_transfers(nb::module_& m) {
  nb::class_<PyBlockPairs>(m, "BlockPairs",
                           "(src, dst) block pairs read once, for transfers that post the same pairs many times.")
      .def("__init__", [](PyBlockPairs* self, nb::handle pairs) { new (self) PyBlockPairs{block_pairs(pairs)}; },
           nb::arg("pairs"))
      .def("__len__", [](const PyBlockPairs& self) { return self.pairs.size(); });

  nb::class_<PyHandle>(m, "Handle", "A transfer in flight: wait(), done(), or `await handle`.")
      .def("wait", &wait, nb::arg("timeout") = nb::none(),
           "Waits (GIL released) until the transfer ends: True, or kvbm.Error if it failed; with a timeout in "
           "seconds, False if it is still running then.")
      .def("done", [](PyHandle& self) { return self.handle->poll().has_value(); }, "Whether the transfer has ended.")
      .def("add_done_callback", &add_done_callback, nb::arg("callback"),
           "Calls callback(None or kvbm.Error) when the transfer ends, on kvbm's one callback thread (a slow "
           "callback delays later callbacks, never transfers).")
      .def("__await__", [](nb::handle self) { return nb::module_::import_("kvbm._aio").attr("await_handle")(self); });

  nb::class_<GpuFence>(m, "GpuFence", "A point in a transfer path's CUDA streams (TransferPath.fence()).")
      .def("enqueue_wait", &GpuFence::enqueue_wait, nb::arg("stream"),
           "Makes the CUDA stream `stream` (an integer, e.g. torch.cuda.current_stream().cuda_stream) wait on "
           "the GPU for the copies the fence covers; returns at once.");

  nb::class_<TransferPath>(m, "TransferPath", "A prepared path between two layouts, for many transfers.")
      .def(
          "post",
          [](const TransferPath& self, nb::handle pairs) {
            const std::vector<BlockPair> blocks = block_pairs(pairs);
            nb::gil_scoped_release released;
            return new PyHandle(self.post(blocks));
          },
          nb::arg("pairs"), nb::rv_policy::take_ownership,
          "Starts copying src block p[0] to dst block p[1] for each pair; returns a Handle.")
      .def(
          "fence",
          [](const TransferPath& self) {
            nb::gil_scoped_release released;
            return self.fence();
          },
          "A GpuFence after every copy posted on this path so far. kvbm.Error (Unsupported) for a path not on "
          "CUDA streams.")
      .def_prop_ro("plan", [](const TransferPath& self) {
        return nb::module_::import_("json").attr("loads")(to_json(self.plan()));
      });

  nb::class_<PyContext>(m, "TransferContext", "The transfer engine: its threads, disk backend, bounce buffers and streams.")
      .def(
          "__init__",
          [](PyContext* self, std::size_t max_transfer_batch_size, std::size_t memcpy_threads,
             const std::string& disk_backend, std::size_t disk_queue_depth, std::size_t bounce_buffer_bytes,
             std::size_t bounce_buffers, bool allow_gds, const std::string& copy_path, int copy_ctas) {
            TransferConfig config;
            config.max_transfer_batch_size = max_transfer_batch_size;
            config.memcpy_threads = memcpy_threads;
            config.disk.backend = disk_backend;
            config.disk.queue_depth = disk_queue_depth;
            config.bounce_buffer_bytes = bounce_buffer_bytes;
            config.bounce_buffers = bounce_buffers;
            config.capabilities.allow_gds = allow_gds;
            const auto path = parse_cuda_copy_path(copy_path);
            if (!path) {
              throw Error(ErrorCode::InvalidArgument,
                          "copy_path='" + printable(copy_path) + "' is not kernel, copy_engine or auto");
            }
            config.cuda.copy_path = *path;
            config.cuda.copy_ctas = copy_ctas;
            config.validate();
            nb::gil_scoped_release released;
            new (self) PyContext{std::make_shared<TransferContext>(std::move(config))};
          },
          nb::kw_only(), nb::arg("max_transfer_batch_size") = TransferConfig{}.max_transfer_batch_size,
          nb::arg("memcpy_threads") = 0, nb::arg("disk_backend") = "auto",
          nb::arg("disk_queue_depth") = DiskOptions{}.queue_depth,
          nb::arg("bounce_buffer_bytes") = TransferConfig{}.bounce_buffer_bytes,
          nb::arg("bounce_buffers") = TransferConfig{}.bounce_buffers, nb::arg("allow_gds") = false,
          nb::arg("copy_path") = "auto", nb::arg("copy_ctas") = CudaOptions{}.copy_ctas)
      .def(
          "transfer",
          [](PyContext& self, const PyLayout& src, const PyLayout& dst, nb::handle pairs) {
            const std::vector<BlockPair> blocks = block_pairs(pairs);
            nb::gil_scoped_release released;
            return new PyHandle(self.context->transfer(src.layout, dst.layout, blocks));
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("pairs"), nb::rv_policy::take_ownership,
          "Starts copying src block p[0] to dst block p[1] for each pair; returns a Handle. Bad pairs fail the "
          "handle with kvbm.Error.")
      .def(
          "prepare",
          [](PyContext& self, const PyLayout& src, const PyLayout& dst) {
            nb::gil_scoped_release released;
            return self.context->prepare(src.layout, dst.layout);
          },
          nb::arg("src"), nb::arg("dst"), nb::keep_alive<0, 1>(), "The path between two layouts, checked and planned once.")
      .def_prop_ro("disk_backend", [](const PyContext& self) { return self.context->disk_backend_name(); });

  // For bench/python/transfer_overhead.py: the same transfers as a Python loop of
  // ctx.transfer(...).wait() makes, from a C++ loop; seconds for all of them.
  m.def(
      "_time_transfers",
      [](PyContext& self, const PyLayout& src, const PyLayout& dst, nb::handle pair_list, std::size_t calls) {
        const std::vector<BlockPair> pairs = block_pairs(pair_list);
        nb::gil_scoped_release released;
        const auto start = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < calls; ++i) self.context->transfer(src.layout, dst.layout, pairs).wait().throw_if_error();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      },
      nb::arg("context"), nb::arg("src"), nb::arg("dst"), nb::arg("pairs"), nb::arg("calls"));

  m.def(
      "plan",
      [](const std::string& src, const std::string& dst, bool remote_src, bool remote_dst, bool gds, bool gpu_rdma) {
        const TransferCapabilities capabilities{gds, gpu_rdma};
        const TransferPlan plan = execution_plan(
            select_strategy(StorageKind::parse(src), !remote_src, StorageKind::parse(dst), !remote_dst, capabilities));
        return nb::module_::import_("json").attr("loads")(to_json(plan));
      },
      nb::arg("src"), nb::arg("dst"), nb::kw_only(), nb::arg("remote_src") = false, nb::arg("remote_dst") = false,
      nb::arg("gds") = false, nb::arg("gpu_rdma") = false,
      "The transfer plan between two storage kinds, as `kvbm plan --json` prints it.");
}

}  // namespace kvbm::python
