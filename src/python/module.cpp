// The `kvbm._kvbm` extension module: kvbm's layouts, transfers and block manager for Python.
// The package's __init__.py defines kvbm.Error before importing this, so errors can be raised
// as it.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "bindings.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm::python {

nb::object python_error(const Error& error) {
  const nb::object error_type = nb::module_::import_("kvbm").attr("Error");
  return error_type(error.message(), std::string(to_string(error.code())));
}

}  // namespace kvbm::python

NB_MODULE(_kvbm, m) {
  namespace nb = nanobind;
  using namespace kvbm::python;
  m.doc() = "kvbm: KV-cache block layouts, transfers between GPU, host and disk, and the block manager";
  nb::register_exception_translator([](const std::exception_ptr& exception, void*) {
    try {
      std::rethrow_exception(exception);
    } catch (const kvbm::Error& error) {
      const nb::object instance = python_error(error);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())), instance.ptr());
    }
  });
  bind_layouts(m);
  bind_transfers(m);
  bind_manager(m);
  bind_distributed(m);
}
