// annlib._core.DenseIndex: index/dense_index.h (brute force) for Python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "../index/dense_index.h"
#include "common.h"

namespace annlib_bindings {
namespace {

using namespace annlib;

class PyDenseIndex {
 public:
  PyDenseIndex(py::dict arrays, int32_t format_version, const std::string& metric, const std::string& dtype,
               double recall_target, const std::string& simd_level, const std::string& bf16_variant,
               int32_t screen_decision)
      : arrays_(arrays) {
    DenseOptions options;
    options.metric = ParseMetric(metric);
    options.type = ParseDenseType(dtype);
    options.recall_target = recall_target;
    options.format_version = format_version;
    options.screen_decision = screen_decision;
    index_ = std::make_unique<DenseIndex>(ArraysFromDict<DenseArrays>(arrays), options, LevelOrActive(simd_level),
                                          ParseBf16Variant(bf16_variant));
  }

  // (ids, scores): [k] for one (dim,) vector, else [n][k].
  py::tuple Search(FloatArray queries, int32_t k, int num_threads, py::object filter) const {
    const int64_t nq = QueryRows(queries, index_->dim());
    const DenseFilter* f = filter.is_none() ? nullptr : filter.cast<const DenseFilter*>();
    index_->CheckK(k);  // before the outputs are allocated
    SearchOutputs out(queries, nq, k);
    const float* qp = queries.data();
    Interruptible([&] { index_->Search(qp, nq, k, num_threads, f, out.id_data, out.score_data); });
    return out.Tuple();
  }

  DenseFilter Compile(py::object allow_ids, py::object allow_mask, py::object deny_ids, py::object deny_mask) const {
    const FilterArg allow(allow_ids, allow_mask), deny(deny_ids, deny_mask);
    py::gil_scoped_release release;
    return index_->Compile(allow.filter, deny.filter);
  }

  bool Screens(int num_threads) const {
    bool screens = false;
    Interruptible([&] { screens = index_->ScreenKeepsRecall(num_threads); });
    return screens;
  }

  int32_t screen_decision() const { return index_->screen_decision(); }
  int32_t num_bins(int32_t k) const { return index_->num_bins(k); }
  int64_t size() const { return index_->size(); }
  int32_t dim() const { return index_->dim(); }
  std::string simd_level() const { return index_->simd_level(); }

 private:
  py::dict arrays_;  // keeps the buffers the engine reads alive
  std::unique_ptr<DenseIndex> index_;
};

}  // namespace

void RegisterDenseIndex(py::module_& m) {
  py::class_<DenseFilter>(m, "DenseFilter").def_readonly("count", &DenseFilter::count);
  py::class_<PyDenseIndex>(m, "DenseIndex")
      .def(py::init<py::dict, int32_t, const std::string&, const std::string&, double, const std::string&,
                    const std::string&, int32_t>(),
           py::arg("arrays"), py::arg("format_version"), py::arg("metric"), py::arg("dtype"),
           py::arg("recall_target") = 1.0, py::arg("simd_level") = "", py::arg("bf16_variant") = "auto",
           py::arg("screen_decision") = -1)
      .def("search", &PyDenseIndex::Search, py::arg("queries").noconvert(), py::arg("k"), py::arg("num_threads") = 0,
           py::arg("filter") = py::none())
      .def("compile_filter", &PyDenseIndex::Compile, py::arg("allow_ids") = py::none(),
           py::arg("allow_mask") = py::none(), py::arg("deny_ids") = py::none(), py::arg("deny_mask") = py::none())
      .def("screens", &PyDenseIndex::Screens, py::arg("num_threads") = 0,
           "whether binned float32 searches pick bin winners with a cheaper screen (an int8 copy of the data, or bf16 "
           "products in batches; checked once on a sample)")
      .def("screen_decision", &PyDenseIndex::screen_decision,
           "the screen decision where made or carried: -1 (not yet), 0 (none), 1 (the kernels' staged screen: bf16 "
           "products) or 2 (an int8 copy)")
      .def("num_bins", &PyDenseIndex::num_bins, py::arg("k"))
      .def("size", &PyDenseIndex::size)
      .def_property_readonly("dim", &PyDenseIndex::dim)
      .def_property_readonly("simd_level", &PyDenseIndex::simd_level);
  m.def("num_bins_for", &NumBinsFor, py::arg("recall_target"), py::arg("k"),
        "L = ceil((k-1) / -ln(recall_target)) strided bins, at least k; 0 = exact (recall_target 1)");
}

}  // namespace annlib_bindings
