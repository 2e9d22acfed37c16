// Block pairs from Python: a kvbm.BlockPairs (read once, copied as it is), or any sequence of
// (src, dst) pairs of integers (Python ints, numpy integers, anything with __index__). A value
// that is no integer is invalid_argument; one that does not fit a block index (negative, or past
// 2^64 - 1) is out_of_range, like every other index out of range; both name the pair and the value.
#include <fmt/format.h>

#include "bindings.hpp"

namespace kvbm::python {
namespace {

std::size_t block_index(nb::handle value, std::size_t pair, const char* side) {
  PyObject* index = PyNumber_Index(value.ptr());
  if (index == nullptr) {
    PyErr_Clear();
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("pair {}: {} block {} is not an integer", pair, side,
                            printable(nb::cast<std::string>(nb::repr(value)))));
  }
  nb::object owned = nb::steal(index);
  const unsigned long long block = PyLong_AsUnsignedLongLong(index);
  if (block == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw Error(ErrorCode::OutOfRange, fmt::format("pair {}: {} block {} is not a block index (0 .. 2^64-1)", pair,
                                                   side, printable(nb::cast<std::string>(nb::str(owned)))));
  }
  return static_cast<std::size_t>(block);
}

}  // namespace

std::vector<BlockPair> block_pairs(nb::handle pairs) {
  if (nb::isinstance<PyBlockPairs>(pairs)) return nb::cast<const PyBlockPairs&>(pairs).pairs;
  if (!PySequence_Check(pairs.ptr())) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("pairs must be a sequence of (src, dst) block pairs, not {}",
                            printable(nb::cast<std::string>(nb::str(pairs.type())))));
  }
  const nb::sequence sequence = nb::borrow<nb::sequence>(pairs);
  std::vector<BlockPair> out;
  out.reserve(nb::len(sequence));
  std::size_t position = 0;
  for (nb::handle pair : sequence) {
    if (!PySequence_Check(pair.ptr()) || PySequence_Size(pair.ptr()) != 2) {
      PyErr_Clear();
      throw Error(ErrorCode::InvalidArgument, fmt::format("pair {}: {} is not a (src, dst) pair", position,
                                                          printable(nb::cast<std::string>(nb::repr(pair)))));
    }
    const nb::object src = nb::steal(PySequence_GetItem(pair.ptr(), 0));
    const nb::object dst = nb::steal(PySequence_GetItem(pair.ptr(), 1));
    out.emplace_back(block_index(src, position, "src"), block_index(dst, position, "dst"));
    ++position;
  }
  return out;
}

}  // namespace kvbm::python
