// annlib._core.PartitionedIndex: index/partitioned_index.h for Python. Arrays
// in and out, the GIL released around the engine; the index itself is the
// engine's.
#include <limits>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "../index/partitioned_index.h"
#include "../search/filtered_search.h"
#include "../search/metric.h"
#include "../search/shard_merge.h"
#include "common.h"

namespace annlib_bindings {
namespace {

using namespace annlib;

class PyPartitionedIndex {
 public:
  PyPartitionedIndex(py::dict arrays, int32_t format_version, const std::string& metric,
                     const std::string& reorder_dtype, const std::string& simd_level)
      : arrays_(arrays) {
    PartitionedOptions options;
    options.metric = ParseMetric(metric);
    options.reorder = !reorder_dtype.empty();
    if (options.reorder) options.reorder_type = ParseDenseType(reorder_dtype);
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

  // (leaves int32 [n][count], exact centroid scores float32 [n][count]), best first.
  py::tuple ChooseLeaves(FloatArray queries, int32_t count, int num_threads) const {
    const int64_t nq = QueryRows(queries, index_->dim());
    if (count < 1 || count > index_->num_leaves())
      throw std::invalid_argument("leaves_to_search must be in [1, " + std::to_string(index_->num_leaves()) + "]");
    std::vector<Candidate> chosen(nq * count);
    const float* qp = queries.data();
    Interruptible([&] { index_->ChooseLeaves(qp, nq, count, num_threads, chosen.data()); });
    py::array_t<int32_t> leaves({nq, int64_t{count}});
    FloatArray scores({nq, int64_t{count}});
    int32_t* lp = leaves.mutable_data();
    float* sp = scores.mutable_data();
    for (int64_t j = 0; j < nq * count; ++j) {
      lp[j] = chosen[j].id;
      sp[j] = chosen[j].score;
    }
    return py::make_tuple(leaves, scores);
  }

  // A shard's answer (PartitionedIndex::SearchCandidates): (ids [n][w], approximate raw
  // scores, reordered raw scores, rows allowed), w = min(wanted, points held, at least 1);
  // probe_leaves/probe_scores [n][p] as choose_leaves gives them (None with exact=True).
  // top_k > 0: (ids [n][t], None, reordered raw scores best first, rows allowed), the top
  // t = min(top_k, w) as one index returns them.
  py::tuple SearchCandidates(FloatArray queries, py::object probe_leaves, py::object probe_scores, int64_t wanted,
                             bool exact, int64_t top_k, int num_threads, py::object allow_ids, py::object allow_mask,
                             py::object deny_ids, py::object deny_mask, py::object compiled) const {
    const int64_t nq = QueryRows(queries, index_->dim());
    if (queries.ndim() != 2) throw std::invalid_argument("queries must be 2-D");
    if (wanted < 1) throw std::invalid_argument("wanted must be >= 1");
    if (top_k < 0) throw std::invalid_argument("top_k must be >= 0");
    const FilterArg allow(allow_ids, allow_mask), deny(deny_ids, deny_mask);
    CandidateSearchArgs args;
    args.exact = exact;
    args.num_threads = num_threads;
    args.allow = allow.filter;
    args.deny = deny.filter;
    args.compiled = compiled.is_none() ? nullptr : compiled.cast<const CompiledFilter*>();
    // Buffers are sized by the points held, never by the request alone.
    args.wanted = static_cast<int32_t>(std::min<int64_t>(wanted, std::max<int64_t>(1, index_->size())));
    args.top_k = static_cast<int32_t>(std::min<int64_t>(top_k, args.wanted));
    std::vector<Candidate> probes;
    if (!exact) {
      const Int32Array leaves = probe_leaves.cast<Int32Array>();
      const FloatArray scores = probe_scores.cast<FloatArray>();
      if (leaves.ndim() != 2 || leaves.shape(0) != nq || scores.ndim() != 2 || scores.shape(0) != nq ||
          scores.shape(1) != leaves.shape(1) || leaves.shape(1) < 1)
        throw std::invalid_argument("probe_leaves and probe_scores must both have shape (num_queries, leaves)");
      args.num_probes = static_cast<int32_t>(leaves.shape(1));
      probes.resize(nq * args.num_probes);
      for (int64_t j = 0; j < nq * args.num_probes; ++j) probes[j] = Candidate{scores.data()[j], leaves.data()[j]};
      args.probes = probes.data();
    }
    const bool top = args.top_k > 0;
    const int64_t w = top ? args.top_k : args.wanted;
    py::array_t<int64_t> ids({nq, w});
    FloatArray approx({top ? int64_t{0} : nq, w}), exact_scores({nq, w});
    int64_t* ip = ids.mutable_data();
    float* ap = top ? nullptr : approx.mutable_data();
    float* ep = exact_scores.mutable_data();
    const float* qp = queries.data();
    int64_t allowed = 0;
    Interruptible([&] { allowed = index_->SearchCandidates(qp, nq, args, ip, ap, ep); });
    return py::make_tuple(ids, top ? py::object(py::none()) : py::object(approx), exact_scores, allowed);
  }

  int64_t AllowedCount(py::object allow_ids, py::object allow_mask, py::object deny_ids, py::object deny_mask,
                       py::object compiled) const {
    const FilterArg allow(allow_ids, allow_mask), deny(deny_ids, deny_mask);
    const CompiledFilter* f = compiled.is_none() ? nullptr : compiled.cast<const CompiledFilter*>();
    py::gil_scoped_release release;
    return index_->AllowedCount(f, allow.filter, deny.filter);
  }

  int64_t TotalSlots() const {
    py::gil_scoped_release release;
    return index_->TotalSlots();
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

  py::array_t<int32_t> AhRanksOverGrid(FloatArray queries, Int32Array grid, int32_t count, Int64Array wanted,
                                       int num_threads) const {
    const int64_t nq = QueryRows(queries, index_->dim());
    if (grid.ndim() != 1 || grid.shape(0) < 1 || grid.shape(0) > index_->num_leaves())
      throw std::invalid_argument("grid must be a 1-d array of leaf counts, at most one per leaf");
    if (wanted.ndim() != 2 || wanted.shape(0) != nq || wanted.shape(1) < 1 ||
        wanted.shape(1) > std::numeric_limits<int32_t>::max())
      throw std::invalid_argument("wanted must be [nq, m] ids, m >= 1, one row per query");
    const auto num_grid = static_cast<int32_t>(grid.shape(0));
    const auto m = static_cast<int32_t>(wanted.shape(1));
    py::array_t<int32_t> out({int64_t{num_grid}, nq, int64_t{m}});
    const float* qp = queries.data();
    const int32_t* gp = grid.data();
    const int64_t* wp = wanted.data();
    int32_t* op = out.mutable_data();
    Interruptible([&] { index_->AhRanksOverGrid(qp, nq, gp, num_grid, count, wp, m, num_threads, op); });
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

// search/shard_merge.h for Python: shards' answers, concatenated per query
// ([n][width] each), -> (ids [n][k], raw scores [n][k]); keys: None (the ids).
py::tuple MergeCandidatesPy(Int64Array ids, FloatArray approx, FloatArray exact, int64_t wanted, int32_t k,
                            int num_threads, py::object keys, bool distinct) {
  if (ids.ndim() != 2 || approx.ndim() != 2 || exact.ndim() != 2 || approx.shape(0) != ids.shape(0) ||
      exact.shape(0) != ids.shape(0) || approx.shape(1) != ids.shape(1) || exact.shape(1) != ids.shape(1))
    throw std::invalid_argument("ids, approx and exact must have one shape (num_queries, width)");
  Int64Array key_array;
  if (!keys.is_none()) {
    key_array = keys.cast<Int64Array>();
    if (key_array.ndim() != 2 || key_array.shape(0) != ids.shape(0) || key_array.shape(1) != ids.shape(1))
      throw std::invalid_argument("keys must have the shape of ids");
  }
  if (wanted < 1 || k < 1) throw std::invalid_argument("wanted and k must be >= 1");
  const int64_t nq = ids.shape(0), width = ids.shape(1);
  py::array_t<int64_t> out_ids({nq, int64_t{k}});
  FloatArray out_scores({nq, int64_t{k}});
  const int64_t* ip = ids.data();
  const int64_t* kp = keys.is_none() ? ip : key_array.data();
  const float* ap = approx.data();
  const float* ep = exact.data();
  int64_t* oi = out_ids.mutable_data();
  float* os = out_scores.mutable_data();
  {
    py::gil_scoped_release release;
    MergeCandidates(nq, width, kp, ip, ap, ep, wanted, k, num_threads, oi, os, distinct);
  }
  return py::make_tuple(out_ids, out_scores);
}

// Raw scores [n][k] of queries [n][d] (as given) in the metric's sense (search/metric.h).
FloatArray RawToMetricPy(FloatArray queries, FloatArray scores, const std::string& metric) {
  if (queries.ndim() != 2 || scores.ndim() != 2 || scores.shape(0) != queries.shape(0))
    throw std::invalid_argument("queries (n, d) and scores (n, k) must have the same rows");
  const Metric m = ParseMetric(metric);
  const int64_t n = queries.shape(0);
  const int32_t d = static_cast<int32_t>(queries.shape(1)), k = static_cast<int32_t>(scores.shape(1));
  FloatArray out({n, int64_t{k}});
  const float* q = queries.data();
  const float* raw = scores.data();
  float* op = out.mutable_data();
  {
    // The queries were checked before their search; only squared L2 reads them (|q|^2 of
    // the rows as given: that measure's queries are not normalised).
    py::gil_scoped_release release;
    std::copy(raw, raw + n * k, op);
    RawToMetric(m, q, n, d, op, k);
  }
  return out;
}

// search/filtered_search.h's plan from counts: (exact, leaves).
py::tuple PlanSearchPy(int32_t num_leaves, int32_t dim, int32_t num_blocks, int64_t slots, bool filtered,
                       int64_t allowed_count, int64_t live, bool has_rows, int32_t leaves, int32_t pre_reorder) {
  if (num_leaves < 1 || leaves < 1 || leaves > num_leaves) throw std::invalid_argument("leaves must be in [1, num_leaves]");
  PlanCounts c;
  c.num_leaves = num_leaves;
  c.dim = dim;
  c.num_blocks = num_blocks;
  c.slots = slots;
  c.filtered = filtered;
  c.allowed_count = allowed_count;
  c.live = live;
  c.has_rows = has_rows;
  const LivePlan plan = PlanSearch(c, leaves, pre_reorder);
  return py::make_tuple(plan.exact, plan.leaves);
}

void RegisterPartitionedIndex(py::module_& m) {
  m.def("merge_candidates", &MergeCandidatesPy, py::arg("ids").noconvert(), py::arg("approx").noconvert(),
        py::arg("exact").noconvert(), py::arg("wanted"), py::arg("k"), py::arg("num_threads") = 0,
        py::arg("keys") = py::none(), py::arg("distinct") = false);
  m.def("raw_to_metric", &RawToMetricPy, py::arg("queries").noconvert(), py::arg("scores").noconvert(),
        py::arg("metric"));
  m.def("plan_search", &PlanSearchPy, py::arg("num_leaves"), py::arg("dim"), py::arg("num_blocks"), py::arg("slots"),
        py::arg("filtered"), py::arg("allowed_count"), py::arg("live"), py::arg("has_rows"), py::arg("leaves"),
        py::arg("pre_reorder"));
  py::register_exception<StaleFilter>(m, "StaleFilterError");
  py::class_<CompiledFilter>(m, "CompiledFilter").def_readonly("count", &CompiledFilter::count);
  py::class_<PyPartitionedIndex>(m, "PartitionedIndex")
      .def(py::init<py::dict, int32_t, const std::string&, const std::string&, const std::string&>(),
           py::arg("arrays"), py::arg("format_version"), py::arg("metric"), py::arg("reorder_dtype"),
           py::arg("simd_level") = "")
      .def("search", &PyPartitionedIndex::Search, py::arg("queries").noconvert(), py::arg("leaves"),
           py::arg("pre_reorder"), py::arg("k"), py::arg("num_threads") = 1, py::arg("timed") = false,
           py::arg("allow_ids") = py::none(), py::arg("allow_mask") = py::none(), py::arg("deny_ids") = py::none(),
           py::arg("deny_mask") = py::none(), py::arg("reorder") = true, py::arg("compiled") = py::none())
      .def("choose_leaves", &PyPartitionedIndex::ChooseLeaves, py::arg("queries").noconvert(), py::arg("count"),
           py::arg("num_threads") = 0)
      .def("search_candidates", &PyPartitionedIndex::SearchCandidates, py::arg("queries").noconvert(),
           py::arg("probe_leaves"), py::arg("probe_scores"), py::arg("wanted"), py::arg("exact") = false,
           py::arg("top_k") = 0, py::arg("num_threads") = 0, py::arg("allow_ids") = py::none(), py::arg("allow_mask") = py::none(),
           py::arg("deny_ids") = py::none(), py::arg("deny_mask") = py::none(), py::arg("compiled") = py::none())
      .def("allowed_count", &PyPartitionedIndex::AllowedCount, py::arg("allow_ids") = py::none(),
           py::arg("allow_mask") = py::none(), py::arg("deny_ids") = py::none(), py::arg("deny_mask") = py::none(),
           py::arg("compiled") = py::none())
      .def("total_slots", &PyPartitionedIndex::TotalSlots)
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
      .def("ah_ranks_over_grid", &PyPartitionedIndex::AhRanksOverGrid, py::arg("queries").noconvert(),
           py::arg("grid").noconvert(), py::arg("count"), py::arg("wanted").noconvert(), py::arg("num_threads") = 0)
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
