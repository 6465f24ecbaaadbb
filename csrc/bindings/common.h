// Helpers shared by the binding units: array aliases, taking arrays from a
// dict without conversion, and parsing the names the Python side passes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>
#include <stdexcept>
#include <string>

#include "../index/index_format.h"
#include "../kernels/dense_scan.h"
#include "../search/row_ids.h"
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

// The engine's view of the arrays in a dict (index/index_format.h names
// them): each taken without conversion (a saved index's arrays may be
// read-only memory maps) and checked for its element type and layout; absent
// entries stay absent. The dict must outlive the spans.
template <class Arrays>
Arrays ArraysFromDict(const py::dict& dict) {
  Arrays arrays;
  annlib::ForEachArray(arrays, [&](const char* name, auto& field) {
    if (!dict.contains(name)) return;
    const py::object obj = dict[name];
    using Field = std::decay_t<decltype(field)>;
    if constexpr (std::is_same_v<Field, annlib::Bytes>) {
      if (!py::isinstance<py::array>(obj)) throw std::invalid_argument(std::string("array '") + name + "' is no array");
      const py::array a = obj.cast<py::array>();
      if (!(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string("array '") + name + "' is not C-contiguous");
      field.data = a.data();
      field.size = a.nbytes();
    } else {
      using A = py::array_t<typename Field::value_type, py::array::c_style>;
      if (!A::check_(obj)) throw std::invalid_argument(std::string("array '") + name + "' has the wrong dtype");
      const A a = obj.cast<A>();
      field.data = a.data();
      field.size = a.size();
    }
  });
  return arrays;
}

// A vector's buffer as a NumPy array that owns it (no copy); shape defaults
// to 1-D over the whole buffer.
template <class T>
py::array ToNumpy(std::vector<T>&& values, py::dtype dtype = py::dtype::of<T>(), std::vector<int64_t> shape = {}) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  if (shape.empty()) shape = {static_cast<int64_t>(owned->size() * sizeof(T) / dtype.itemsize())};
  return py::array(dtype, shape, owned->data(), free_when_done);
}

// A filter argument: ids (int64) or a mask (uint8 0/1, indexed by id); the
// arrays stay referenced while the filter is used.
struct FilterArg {
  Int64Array ids;
  Uint8Array mask;
  annlib::IdFilter filter;
  FilterArg(const py::object& id_list, const py::object& id_mask) {
    if (!id_list.is_none()) {
      ids = id_list.cast<Int64Array>();
      if (ids.ndim() != 1) throw std::invalid_argument("filter ids must be 1-D");
      filter.ids = ids.data();
      filter.num_ids = ids.shape(0);
    } else if (!id_mask.is_none()) {
      mask = id_mask.cast<Uint8Array>();
      if (mask.ndim() != 1) throw std::invalid_argument("a filter mask must be 1-D");
      filter.mask = mask.data();
      filter.mask_length = mask.shape(0);
    }
  }
};

// Queries as the engine takes them: (n, dim) or one (dim,) vector, float32,
// C-contiguous (the Python edge converts); returns n.
inline int64_t QueryRows(const FloatArray& queries, int32_t dim) {
  if (queries.ndim() == 1 && queries.shape(0) == dim) return 1;
  if (queries.ndim() == 2 && queries.shape(1) == dim) return queries.shape(0);
  throw std::invalid_argument("queries must have shape (num_queries, " + std::to_string(dim) + ") or (" +
                              std::to_string(dim) + ",)");
}

// The outputs of a search of n queries, k results each: 1-D for one (dim,)
// vector, else (n, k); allocated with the GIL held, filled without it.
struct SearchOutputs {
  py::array_t<int64_t> ids;
  FloatArray scores;
  int64_t* id_data;
  float* score_data;
  SearchOutputs(const FloatArray& queries, int64_t n, int32_t k)
      : ids(queries.ndim() == 1 ? std::vector<int64_t>{k} : std::vector<int64_t>{n, k}),
        scores(queries.ndim() == 1 ? std::vector<int64_t>{k} : std::vector<int64_t>{n, k}),
        id_data(ids.mutable_data()),
        score_data(scores.mutable_data()) {}
  py::tuple Tuple() const { return py::make_tuple(ids, scores); }
};

// `width` values of type T per id (int64, 1-D), filled by fill(ids, count,
// out) without the GIL.
template <class T, class F>
py::array_t<T> PerId(const Int64Array& ids, int64_t width, F&& fill) {
  if (ids.ndim() != 1) throw std::invalid_argument("ids must be 1-D");
  py::array_t<T> out(width == 1 ? std::vector<int64_t>{ids.shape(0)} : std::vector<int64_t>{ids.shape(0), width});
  const int64_t* ip = ids.data();
  const int64_t m = ids.shape(0);
  T* op = out.mutable_data();
  py::gil_scoped_release release;
  fill(ip, m, op);
  return out;
}

// Runs Python's signal handlers (the call's poll, on its own thread): true when
// one raised (Ctrl-C's KeyboardInterrupt); the error stays set for the caller.
inline bool PollPythonSignals() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// Whether the calling thread is Python's main thread (interrupts.cpp), the only
// one that runs signal handlers: PyErr_CheckSignals does nothing on the others.
bool OnMainThread();

// Runs f() (pure C++ work: no Python object is touched) with the GIL released,
// as one cancellable call (util/cancel.h): Ctrl-C raises KeyboardInterrupt
// within a fraction of a second (so does an interrupt of every call,
// annlib._core.interrupt_all), a time limit of the thread (annlib.time_limit)
// TimeoutError. Never for updates, which must not stop half-way.
// Only a call on the main thread polls: elsewhere the poll would take the GIL
// every 50 ms for nothing, stalling the call behind busy Python threads; Ctrl-C
// reaches those calls through the chained C handler (interrupts.cpp).
template <class F>
void Interruptible(F&& f) {
  annlib::CallControl control(OnMainThread() ? &PollPythonSignals : nullptr);
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

void RegisterDenseIndex(py::module_& m);
void RegisterMaxSimScorer(py::module_& m);
void RegisterPartitionedIndex(py::module_& m);
void RegisterTesting(py::module_& m);
void RegisterInterrupts(py::module_& m);

}  // namespace annlib_bindings
