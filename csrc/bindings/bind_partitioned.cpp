// annlib._core.PartitionedIndex: index/partitioned_index.h for Python. Arrays
// in and out, the GIL released around the engine; the index itself is the
// engine's.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "../index/partitioned_index.h"
#include "common.h"

namespace annlib_bindings {
namespace {

using namespace annlib;

class PyPartitionedIndex {
 public:
  PyPartitionedIndex(py::dict arrays, int32_t format_version, const std::string& metric,
                     const std::string& reorder_dtype, float overretrieve_factor, const std::string& simd_level)
      : arrays_(arrays) {
    PartitionedOptions options;
    options.metric = ParseMetric(metric);
    options.reorder = !reorder_dtype.empty();
    if (options.reorder) options.reorder_type = ParseDenseType(reorder_dtype);
    options.overretrieve_factor = overretrieve_factor;
    options.format_version = format_version;
    index_ = std::make_unique<PartitionedIndex>(ArraysFromDict<PartitionedArrays>(arrays), options,
                                                LevelOrActive(simd_level));
  }

  // (ids, scores) of each query, [k] for one (dim,) vector or [n][k]; with
  // timed=True also a dict of per-stage seconds (single-threaded calls).
  // reorder=False: the AH candidates of exactly `leaves` leaves (the tuner's
  // view of the scan stage).
  py::tuple Search(FloatArray queries, int32_t leaves, int32_t pre_reorder, int32_t k, int num_threads, bool timed,
                   py::object allow_ids, py::object allow_mask, py::object deny_ids, py::object deny_mask,
                   bool reorder, py::object compiled) const {
    const int64_t nq = QueryRows(queries, index_->dim());
    const FilterArg allow(allow_ids, allow_mask), deny(deny_ids, deny_mask);
    PartitionedSearchArgs args;
    args.leaves = leaves;
    args.pre_reorder = pre_reorder;
    args.k = k;
    args.num_threads = num_threads;
    args.allow = allow.filter;
    args.deny = deny.filter;
    args.compiled = compiled.is_none() ? nullptr : compiled.cast<const CompiledFilter*>();
    args.reorder = reorder;
    StageTimes times;
    if (timed) args.times = &times;
    index_->CheckK(k);  // before the outputs are allocated
    SearchOutputs out(queries, nq, k);
    const float* qp = queries.data();
    Interruptible([&] { index_->Search(qp, nq, args, out.id_data, out.score_data); });
    if (!timed) return out.Tuple();
    py::dict t;
    t["centroids"] = times.centroids * 1e-9;
    t["lut"] = times.lut * 1e-9;
    t["scan"] = times.scan * 1e-9;
    t["reorder"] = times.reorder * 1e-9;
    t["total"] = times.total * 1e-9;
    return py::make_tuple(out.ids, out.scores, t);
  }

  CompiledFilter Compile(py::object allow_ids, py::object allow_mask, py::object deny_ids, py::object deny_mask) const {
    const FilterArg allow(allow_ids, allow_mask), deny(deny_ids, deny_mask);
    py::gil_scoped_release release;
    return index_->Compile(allow.filter, deny.filter);
  }

  // Points placed by annlib/quantized/placement.py: leaves, codes and slot
  // terms per copy (the SOAR copy's may be None), and packed reorder rows.
  void Upsert(Int64Array ids, Int32Array leaf0, py::object leaf1, Uint8Array codes0, py::object codes1,
              py::object bias0, py::object bias1, py::object rows) {
    if (ids.ndim() != 1) throw std::invalid_argument("ids must be 1-D");
    const int64_t m = ids.shape(0);
    auto per_point = [&](const py::array& a, const char* what) {
      if (a.ndim() < 1 || a.shape(0) != m) throw std::invalid_argument(std::string(what) + " must have one entry per id");
    };
    auto codes_of = [&](const Uint8Array& c) {
      per_point(c, "codes");
      if (c.ndim() != 2 || c.shape(1) != index_->num_blocks())
        throw std::invalid_argument("codes must have shape (len(ids), num_blocks)");
      return c.data();
    };
    NewPoints p;
    p.count = m;
    p.ids = ids.data();
    per_point(leaf0, "leaves");
    p.leaf[0] = leaf0.data();
    p.codes[0] = codes_of(codes0);
    Int32Array l1;
    Uint8Array c1;
    FloatArray b0, b1;
    if (!leaf1.is_none()) {
      l1 = leaf1.cast<Int32Array>();
      per_point(l1, "spill leaves");
      if (codes1.is_none()) throw std::invalid_argument("spill leaves need spill codes");
      c1 = codes1.cast<Uint8Array>();
      p.leaf[1] = l1.data();
      p.codes[1] = codes_of(c1);
    }
    if (!bias0.is_none()) {
      b0 = bias0.cast<FloatArray>();
      per_point(b0, "slot bias");
      p.bias[0] = b0.data();
    }
    if (!bias1.is_none()) {
      b1 = bias1.cast<FloatArray>();
      per_point(b1, "slot bias");
      p.bias[1] = b1.data();
    }
    py::array row_array;
    FloatArray row_bias, row_scale, row_offset;
    if (!rows.is_none()) {
      const py::dict packed = rows.cast<py::dict>();
      row_array = packed["rows"].cast<py::array>();
      per_point(row_array, "rows");
      row_bias = packed["row_bias"].cast<FloatArray>();
      per_point(row_bias, "row_bias");
      p.rows = row_array.data();
      p.rows_bytes = row_array.nbytes();
      p.row_bias = row_bias.data();
      if (packed.contains("row_scale")) {
        row_scale = packed["row_scale"].cast<FloatArray>();
        row_offset = packed["row_offset"].cast<FloatArray>();
        per_point(row_scale, "row_scale");
        per_point(row_offset, "row_offset");
        p.row_scale = row_scale.data();
        p.row_offset = row_offset.data();
      }
    }
    py::gil_scoped_release release;  // updates are never interrupted half-way
    index_->Upsert(p);
  }

  void Remove(Int64Array ids) {
    if (ids.ndim() != 1) throw std::invalid_argument("ids must be 1-D");
    py::gil_scoped_release release;
    index_->Remove(ids.data(), ids.shape(0));
  }

  void Compact() {
    py::gil_scoped_release release;
    index_->Compact();
  }

  py::dict Export() {
    PartitionedExport e;
    {
      py::gil_scoped_release release;
      e = index_->Export();
    }
    const int64_t n = static_cast<int64_t>(e.ids.size());
    py::dict out;
    out["leaf_starts"] = ToNumpy(std::move(e.leaf_starts));
    out["slot_ids"] = ToNumpy(std::move(e.slot_ids));
    out["codes"] = ToNumpy(std::move(e.codes));
    if (index_->has_slot_bias()) out["slot_bias"] = ToNumpy(std::move(e.slot_bias));
    out["ids"] = ToNumpy(std::move(e.ids));
    out["row_added"] = ToNumpy(std::move(e.row_added));
    if (index_->has_reorder()) {
      const std::vector<int64_t> shape{n, RowStride(index_->dim())};
      switch (index_->reorder_type()) {
        case DenseType::kFloat32: out["rows"] = ToNumpy(std::move(e.rows), py::dtype::of<float>(), shape); break;
        case DenseType::kBFloat16: out["rows"] = ToNumpy(std::move(e.rows), py::dtype::of<uint16_t>(), shape); break;
        case DenseType::kInt8: out["rows"] = ToNumpy(std::move(e.rows), py::dtype::of<int8_t>(), shape); break;
      }
      out["row_bias"] = ToNumpy(std::move(e.row_bias));
      if (index_->reorder_type() == DenseType::kInt8) {
        out["row_scale"] = ToNumpy(std::move(e.row_scale));
        out["row_offset"] = ToNumpy(std::move(e.row_offset));
      }
    }
    return out;
  }

  py::dict Stats() const {
    PartitionedStats s;
    {
      py::gil_scoped_release release;
      s = index_->Stats();
    }
    py::dict out;
    out["size"] = s.size;
    out["rows"] = s.rows;
    out["added"] = s.added;
    out["leaf_live"] = ToNumpy(std::move(s.leaf_live));
    return out;
  }

  py::array_t<bool> Contains(Int64Array ids) const {
    return PerId<bool>(ids, 1, [&](const int64_t* ip, int64_t m, bool* op) { index_->Contains(ip, m, op); });
  }

  py::array_t<int32_t> LeavesOf(Int64Array ids) const {
    return PerId<int32_t>(ids, 2, [&](const int64_t* ip, int64_t m, int32_t* op) { index_->LeavesOf(ip, m, op); });
  }

  py::array_t<int32_t> LeafOrder(FloatArray queries, int num_threads) const {
    const int64_t nq = QueryRows(queries, index_->dim());
    py::array_t<int32_t> out({nq, int64_t{index_->num_leaves()}});
    const float* qp = queries.data();
    int32_t* op = out.mutable_data();
    Interruptible([&] { index_->LeafOrder(qp, nq, num_threads, op); });
    return out;
  }

  py::array_t<int64_t> LeafSlots() const {
    py::array_t<int64_t> out(index_->num_leaves());
    int64_t* op = out.mutable_data();
    py::gil_scoped_release release;
    index_->LeafSlots(op);
    return out;
  }

  py::array Ids() const {
    std::vector<int64_t> ids;
    {
      py::gil_scoped_release release;
      ids = index_->Ids();
    }
    return ToNumpy(std::move(ids));
  }

  py::array_t<float> Vectors(Int64Array ids) const {
    return PerId<float>(ids, index_->dim(), [&](const int64_t* ip, int64_t m, float* op) { index_->Vectors(ip, m, op); });
  }

  int64_t size() const {
    py::gil_scoped_release release;
    return index_->size();
  }
  bool spilled() const {
    py::gil_scoped_release release;
    return index_->spilled();
  }
  std::string simd_level() const { return index_->simd_level(); }
  int32_t num_leaves() const { return index_->num_leaves(); }
  int32_t dim() const { return index_->dim(); }

 private:
  py::dict arrays_;  // keeps the buffers the engine reads alive
  std::unique_ptr<PartitionedIndex> index_;
};

}  // namespace

void RegisterPartitionedIndex(py::module_& m) {
  py::register_exception<StaleFilter>(m, "StaleFilterError");
  py::class_<CompiledFilter>(m, "CompiledFilter").def_readonly("count", &CompiledFilter::count);
  py::class_<PyPartitionedIndex>(m, "PartitionedIndex")
      .def(py::init<py::dict, int32_t, const std::string&, const std::string&, float, const std::string&>(),
           py::arg("arrays"), py::arg("format_version"), py::arg("metric"), py::arg("reorder_dtype"),
           py::arg("overretrieve_factor") = 1.0f, py::arg("simd_level") = "")
      .def("search", &PyPartitionedIndex::Search, py::arg("queries").noconvert(), py::arg("leaves"),
           py::arg("pre_reorder"), py::arg("k"), py::arg("num_threads") = 1, py::arg("timed") = false,
           py::arg("allow_ids") = py::none(), py::arg("allow_mask") = py::none(), py::arg("deny_ids") = py::none(),
           py::arg("deny_mask") = py::none(), py::arg("reorder") = true, py::arg("compiled") = py::none())
      .def("compile_filter", &PyPartitionedIndex::Compile, py::arg("allow_ids") = py::none(),
           py::arg("allow_mask") = py::none(), py::arg("deny_ids") = py::none(), py::arg("deny_mask") = py::none())
      .def("upsert", &PyPartitionedIndex::Upsert, py::arg("ids").noconvert(), py::arg("leaf0").noconvert(),
           py::arg("leaf1"), py::arg("codes0").noconvert(), py::arg("codes1"), py::arg("bias0"), py::arg("bias1"),
           py::arg("rows"))
      .def("remove", &PyPartitionedIndex::Remove, py::arg("ids").noconvert())
      .def("compact", &PyPartitionedIndex::Compact)
      .def("export", &PyPartitionedIndex::Export)
      .def("stats", &PyPartitionedIndex::Stats)
      .def("contains", &PyPartitionedIndex::Contains, py::arg("ids").noconvert())
      .def("leaves_of", &PyPartitionedIndex::LeavesOf, py::arg("ids").noconvert())
      .def("leaf_order", &PyPartitionedIndex::LeafOrder, py::arg("queries").noconvert(), py::arg("num_threads") = 0)
      .def("leaf_slots", &PyPartitionedIndex::LeafSlots)
      .def("ids", &PyPartitionedIndex::Ids)
      .def("vectors", &PyPartitionedIndex::Vectors, py::arg("ids").noconvert())
      .def("size", &PyPartitionedIndex::size)
      .def_property_readonly("spilled", &PyPartitionedIndex::spilled)
      .def_property_readonly("simd_level", &PyPartitionedIndex::simd_level)
      .def_property_readonly("num_leaves", &PyPartitionedIndex::num_leaves)
      .def_property_readonly("dim", &PyPartitionedIndex::dim);
}

}  // namespace annlib_bindings
