// Helpers shared by the binding units: array aliases, taking arrays from a
// dict without conversion, and parsing the names the Python side passes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../kernels/dense_scan.h"
#include "../simd/dispatch.h"

namespace annlib_bindings {

namespace py = pybind11;
using annlib::DenseType;
using annlib::SimdLevel;

using FloatArray = py::array_t<float, py::array::c_style>;
using Int32Array = py::array_t<int32_t, py::array::c_style>;
using Int64Array = py::array_t<int64_t, py::array::c_style>;
using Uint8Array = py::array_t<uint8_t, py::array::c_style>;

// A 1-D array of exactly `length` elements of type A's dtype, taken from a
// dict of arrays without conversion (saved indexes may be read-only maps).
template <class A>
inline A DictVector(const py::dict& arrays, const char* name, int64_t length) {
  if (!arrays.contains(name)) throw std::invalid_argument(std::string("missing array '") + name + "'");
  py::object obj = arrays[name];
  if (!A::check_(obj)) throw std::invalid_argument(std::string("array '") + name + "' has the wrong dtype");
  A a = obj.cast<A>();
  if (a.ndim() != 1 || a.shape(0) != length)
    throw std::invalid_argument(std::string("array '") + name + "' has the wrong length");
  return a;
}

inline DenseType ParseDenseType(const std::string& name) {
  if (name == "float32") return DenseType::kFloat32;
  if (name == "bfloat16") return DenseType::kBFloat16;
  if (name == "int8") return DenseType::kInt8;
  throw std::invalid_argument("dtype must be 'float32', 'bfloat16' or 'int8', got '" + name + "'");
}

inline SimdLevel LevelOrActive(const std::string& name) {
  return name.empty() ? annlib::ActiveLevel() : annlib::ParseSimdLevel(name);
}

void RegisterPartitionedScorer(py::module_& m);

}  // namespace annlib_bindings
