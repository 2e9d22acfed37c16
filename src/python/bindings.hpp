#pragma once
// Shared by the Python module's binding files: the wrappers Python holds, and the rules every
// binding follows.
// - Every kvbm::Error becomes kvbm.Error (message, .code); nothing a caller passes crashes the
//   interpreter.
// - The GIL is released while C++ waits or works, and taken again by any C++ thread that
//   touches a Python object (a completion callback, the last reference to a caller's tensors).
#include <nanobind/nanobind.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "kvbm/transfer/transfer_context.hpp"

namespace kvbm::python {

namespace nb = nanobind;

// A Python object that C++ may drop on any thread: the GIL is taken to release it.
class PythonRef {
 public:
  explicit PythonRef(nb::object object) : object_(std::move(object)) {}
  PythonRef(const PythonRef&) = delete;
  PythonRef& operator=(const PythonRef&) = delete;
  ~PythonRef() {
    if (!object_.is_valid() || !Py_IsInitialized()) {
      (void)object_.release();  // the interpreter is gone: nothing left to release into
      return;
    }
    nb::gil_scoped_acquire gil;
    object_.reset();
  }
  [[nodiscard]] const nb::object& get() const { return object_; }

 private:
  nb::object object_;
};

struct PyLayout {
  LayoutPtr layout;
};

// A context whose destruction (it waits for its transfers) lets other Python threads run.
// Shared with the block managers made over it.
struct PyContext {
  std::shared_ptr<TransferContext> context;
  ~PyContext() {
    nb::gil_scoped_release released;
    context.reset();
  }
};

// A transfer in flight. Its destructor waits for the transfer, with the GIL released.
struct PyHandle {
  explicit PyHandle(TransferHandle h) : handle(std::make_unique<TransferHandle>(std::move(h))) {}
  ~PyHandle() {
    nb::gil_scoped_release released;
    handle.reset();
  }
  std::unique_ptr<TransferHandle> handle;
};

// kvbm.Error(message, code) for `error`, as a Python exception object.
[[nodiscard]] nb::object python_error(const Error& error);

// kvbm.BlockPairs: pairs read from Python once, for posting the same pairs many times (a load
// a layer at a time posts them once per layer).
struct PyBlockPairs {
  std::vector<BlockPair> pairs;
};

// (src, dst) block pairs from a kvbm.BlockPairs or any Python sequence of integer pairs
// (block_pairs.cpp): kvbm.Error out_of_range naming the value for a negative or oversized index,
// invalid_argument for no integer.
[[nodiscard]] std::vector<BlockPair> block_pairs(nb::handle pairs);

// Layout.from_tensors (from_tensors.cpp).
[[nodiscard]] PyLayout layout_from_tensors(const LayoutConfig& config, const nb::sequence& tensors, const std::string& form,
                                           const std::optional<std::string>& order, bool pinned);

void bind_layouts(nb::module_& m);
void bind_transfers(nb::module_& m);
void bind_manager(nb::module_& m);
void bind_distributed(nb::module_& m);

}  // namespace kvbm::python
