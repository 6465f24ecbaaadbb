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
#include "../util/cancel.h"

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

// Runs Python's signal handlers (the call's poll, on its own thread): true when
// one raised (Ctrl-C's KeyboardInterrupt); the error stays set for the caller.
inline bool PollPythonSignals() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// Runs f() (pure C++ work: no Python object is touched) with the GIL released,
// as one cancellable call (util/cancel.h): Ctrl-C raises KeyboardInterrupt
// within a fraction of a second (so does an interrupt of every call,
// annlib._core.interrupt_all), a time limit of the thread (annlib.time_limit)
// TimeoutError. Never for updates, which must not stop half-way.
template <class F>
void Interruptible(F&& f) {
  annlib::CallControl control(&PollPythonSignals);
  try {
    py::gil_scoped_release release;
    f();
  } catch (const annlib::Cancelled& stop) {
    // A poll that stopped the call left its signal handler's error set. An
    // interrupt of every call (SIGINT seen by the chained C handler) leaves
    // Python's own handler pending: on the main thread it runs now and raises
    // KeyboardInterrupt itself (raising a second one here would make two).
    if (!control.poll_stopped() && PyErr_CheckSignals() == 0) {
      if (stop.reason == annlib::StopReason::kDeadline)
        PyErr_SetString(PyExc_TimeoutError, "annlib: the time limit passed before the work was done");
      else
        PyErr_SetNone(PyExc_KeyboardInterrupt);
    }
    throw py::error_already_set();
  }
  // The work finished, but a signal handler raised meanwhile: its error wins.
  if (control.poll_stopped()) throw py::error_already_set();
}

void RegisterPartitionedScorer(py::module_& m);
void RegisterInterrupts(py::module_& m);

}  // namespace annlib_bindings
