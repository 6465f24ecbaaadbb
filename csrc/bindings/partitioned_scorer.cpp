// annlib._core.PartitionedScorer: the quantized partitioning index as Python
// sees it. It checks the arrays of a build or a load once, then searches and
// updates them (search/partitioned_store.h keeps the changes).
//
// Concurrency: one writer-preferring reader-writer lock. Searches hold it
// shared from the first scanned leaf to the last id they translate; upserts,
// deletes, compaction and export hold it alone, so a search sees the index
// wholly before or wholly after an update. The GIL is always released before
// the lock is taken and never taken while the lock is held, except by a
// search's Ctrl-C poll (common.h), which waits for the GIL holding the lock
// shared: safe, since no thread waits for the lock holding the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "../quantization/lut16_tables.h"
#include "../search/filtered_search.h"
#include "../search/partitioned_search.h"
#include "../search/partitioned_store.h"
#include "../simd/dispatch.h"
#include "../util/rw_lock.h"
#include "common.h"

namespace annlib_bindings {
namespace {

using namespace annlib;

// An optional 1-D array argument of type A (None -> empty), length-checked.
template <class A>
A Optional(const py::object& obj, const char* name, int64_t length) {
  if (obj.is_none()) return A();
  if (!A::check_(obj)) throw std::invalid_argument(std::string(name) + " has the wrong dtype");
  A a = obj.cast<A>();
  if (a.ndim() != 1 || (length >= 0 && a.shape(0) != length))
    throw std::invalid_argument(std::string(name) + " has the wrong shape");
  return a;
}

// A filter argument: ids (int64) or a mask (uint8 0/1, indexed by id).
struct FilterArg {
  Int64Array ids;
  Uint8Array mask;
  IdFilter filter;
  FilterArg(const py::object& id_list, const py::object& id_mask) {
    if (!id_list.is_none()) {
      ids = Optional<Int64Array>(id_list, "filter ids", -1);
      filter.ids = ids.data();
      filter.num_ids = ids.shape(0);
    } else if (!id_mask.is_none()) {
      mask = Optional<Uint8Array>(id_mask, "filter mask", -1);
      filter.mask = mask.data();
      filter.mask_length = mask.shape(0);
    }
  }
};

// A filter turned into a row bitmask once, for many searches (Python:
// searcher.compile_filter). Valid for the scorer and store version it was made
// at; a search given a stale one raises StaleFilter and the caller recompiles.
struct CompiledFilter {
  std::vector<uint64_t> bits;
  int64_t count = 0;
  const void* owner = nullptr;
  uint64_t version = 0;
};

struct StaleFilter : std::runtime_error {
  StaleFilter() : std::runtime_error("the index changed since this filter was compiled") {}
};

class PartitionedScorer {
 public:
  PartitionedScorer(py::dict arrays, int64_t n, int32_t dim, int32_t num_blocks, int32_t dims_per_block,
                    const std::string& reorder_dtype, const std::string& simd_level, float overretrieve_factor)
      : arrays_(arrays) {
    const SimdLevel level = LevelOrActive(simd_level);
    kernels_ = {&DenseKernelsFor(level), Lut16KernelFor(level), Lut16BuildFor(level), Lut16MultiKernelFor(level)};
    if (n < 0 || dim <= 0 || num_blocks <= 0 || dims_per_block <= 0 ||  // n = 0: every point deleted
        int64_t{num_blocks} * dims_per_block != dim)
      throw std::invalid_argument("bad index dimensions");
    v_.dim = dim;
    v_.num_blocks = num_blocks;
    v_.dims_per_block = dims_per_block;
    const int64_t num_leaves = Length("leaf_starts") - 1;
    if (num_leaves < 1) throw std::invalid_argument("the index has no leaves");
    v_.row_stride = RowStride(dim);
    py::array panels = arrays["centroid_panels"].cast<py::array>();
    // With float32 centroid rows present (every index built now) the panels
    // are int8, screen the leaves, and the best are rescored; without them
    // (indexes saved before int8 screening) float32 panels score exactly.
    const bool screened = arrays.contains("centroid_rows");
    v_.centroids.type = screened ? DenseType::kInt8 : DenseType::kFloat32;
    v_.centroids.n = num_leaves;
    v_.centroids.dim = dim;
    if (panels.nbytes() != v_.centroids.num_panels() * PanelBytes(v_.centroids.type, dim))
      throw std::invalid_argument("centroid panels have the wrong size");
    v_.centroids.panels = panels.data();
    const int64_t padded = v_.centroids.num_panels() * kPanelWidth;
    v_.centroids.bias = DictVector<FloatArray>(arrays, "centroid_bias", padded).data();
    if (screened) {
      v_.centroids.scale = DictVector<FloatArray>(arrays, "centroid_scale", padded).data();
      v_.centroids.offset = DictVector<FloatArray>(arrays, "centroid_offset", padded).data();
      v_.centroids.sums = DictVector<Int32Array>(arrays, "centroid_sums", padded).data();
      v_.centroids.scaled_sums = DictVector<FloatArray>(arrays, "centroid_scaled_sums", padded).data();
      v_.centroid_rows = DictVector<FloatArray>(arrays, "centroid_rows", num_leaves * v_.row_stride).data();
      v_.centroid_row_bias = DictVector<FloatArray>(arrays, "centroid_row_bias", num_leaves).data();
    }
    const Int64Array starts = DictVector<Int64Array>(arrays, "leaf_starts", num_leaves + 1);
    const int64_t* st = starts.data();
    const int64_t slots = st[num_leaves];
    for (int64_t l = 0; l < num_leaves; ++l)
      if (st[l] < 0 || st[l] > st[l + 1] || st[l] % kLut16Group != 0)
        throw std::invalid_argument("leaf_starts must be increasing multiples of 32");
    if (slots % kLut16Group != 0) throw std::invalid_argument("leaf_starts must end on a multiple of 32");
    const Int32Array ids = DictVector<Int32Array>(arrays, "slot_ids", slots);
    // Every datapoint is stored once, or twice when SOAR spilled it.
    std::vector<uint8_t> copies(n, 0);
    for (int64_t i = 0; i < slots; ++i) {
      const int32_t id = ids.data()[i];
      if (id < -1 || id >= n) throw std::invalid_argument("slot_ids out of range");
      if (id >= 0 && ++copies[id] > 2) throw std::invalid_argument("slot_ids hold a datapoint more than twice");
    }
    for (int64_t j = 0; j < n; ++j) {
      if (copies[j] == 0) throw std::invalid_argument("slot_ids miss datapoint " + std::to_string(j));
      if (copies[j] == 2) v_.spilled = true;
    }
    if (!(overretrieve_factor >= 1.0f) || !std::isfinite(overretrieve_factor))
      throw std::invalid_argument("overretrieve_factor must be a finite number >= 1");
    v_.overretrieve_factor = overretrieve_factor;
    v_.lut_centers = DictVector<FloatArray>(arrays, "lut_centers", int64_t{num_blocks} * dims_per_block * 16).data();

    StoreArrays base;
    base.num_leaves = static_cast<int32_t>(num_leaves);
    base.num_blocks = num_blocks;
    base.leaf_starts = st;
    base.slot_ids = ids.data();
    has_slot_bias_ = arrays.contains("slot_bias");
    if (has_slot_bias_) base.slot_bias = DictVector<FloatArray>(arrays, "slot_bias", slots).data();
    base.codes = DictVector<Uint8Array>(arrays, "codes", slots / kLut16Group * PaddedBlocks(num_blocks) * 16).data();
    base.num_rows = n;
    if (arrays.contains("ids")) base.ids = DictVector<Int64Array>(arrays, "ids", n).data();
    if (arrays.contains("row_added")) base.row_added = DictVector<Uint8Array>(arrays, "row_added", n).data();
    base.row_stride = v_.row_stride;
    has_rows_ = !reorder_dtype.empty();
    if (has_rows_) {
      v_.reorder_type = base.row_type = ParseDenseType(reorder_dtype);
      py::array rows = arrays["rows"].cast<py::array>();
      if (rows.nbytes() != n * v_.row_stride * RowElementBytes(v_.reorder_type) ||
          !(rows.flags() & py::array::c_style))
        throw std::invalid_argument("reorder rows have the wrong size or layout");
      base.rows = rows.data();
      base.row_bias = DictVector<FloatArray>(arrays, "row_bias", n).data();
      if (v_.reorder_type == DenseType::kInt8) {
        base.row_scale = DictVector<FloatArray>(arrays, "row_scale", n).data();
        base.row_offset = DictVector<FloatArray>(arrays, "row_offset", n).data();
      }
    }
    store_ = std::make_unique<PartitionedStore>(base);
    store_->FillView(&v_);
  }

  // Returns (ids int64 [nq][k], raw scores [nq][k]); with timed=True also a
  // dict of per-stage seconds (kept for single-threaded calls). reorder=False
  // returns the AH candidates of exactly the given leaves, as rows rather
  // than user ids (the tuner's view of the scan stage).
  py::tuple Search(FloatArray queries, int32_t leaves, int32_t pre_reorder, int32_t k, int num_threads, bool timed,
                   py::object allow_ids, py::object allow_mask, py::object deny_ids, py::object deny_mask,
                   bool reorder, py::object compiled_filter) const {
    if (queries.ndim() != 2 || queries.shape(1) != v_.dim)
      throw std::invalid_argument("queries must have shape (num_queries, " + std::to_string(v_.dim) + ")");
    const FilterArg allow(allow_ids, allow_mask), deny(deny_ids, deny_mask);
    const CompiledFilter* compiled = compiled_filter.is_none() ? nullptr : compiled_filter.cast<const CompiledFilter*>();
    const int64_t nq = queries.shape(0);
    py::array_t<int64_t> ids({nq, int64_t{k}});
    FloatArray scores({nq, int64_t{k}});
    StageTimes times;
    const float* qp = queries.data();
    int64_t* ip = ids.mutable_data();
    float* sp = scores.mutable_data();
    Interruptible([&] {
      std::shared_lock<RwLock> lock(lock_);
      PartitionedView v = v_;
      if (!reorder) v.rows = nullptr;
      LiveSearchArgs a;
      std::vector<uint64_t> bits;
      if (compiled != nullptr) {
        if (compiled->owner != this || compiled->version != store_->version()) throw StaleFilter();
        a.allowed_count = compiled->count;
        a.allowed = compiled->bits.data();
      } else if (allow.filter.present() || deny.filter.present()) {
        a.allowed_count = store_->FilterRows(allow.filter, deny.filter, &bits);
        a.allowed = bits.data();
      } else {
        a.allowed_count = store_->size();
      }
      a.fill_short = reorder;
      a.allowed_rows = [&]() {
        if (a.allowed == nullptr) return store_->LiveRows();
        return PartitionedStore::RowsOf(compiled ? compiled->bits : bits, store_->num_rows());
      };
      LiveSearch(v, kernels_, qp, nq, PartitionedParams{leaves, pre_reorder, k}, num_threads, a, store_->size(), ip,
                 sp, timed ? &times : nullptr);
      if (reorder) RowsToIds(ip, nq * k);
    });
    if (!timed) return py::make_tuple(ids, scores);
    py::dict t;
    t["centroids"] = times.centroids * 1e-9;
    t["lut"] = times.lut * 1e-9;
    t["scan"] = times.scan * 1e-9;
    t["reorder"] = times.reorder * 1e-9;
    t["total"] = times.total * 1e-9;
    return py::make_tuple(ids, scores, t);
  }

  CompiledFilter Compile(py::object allow_ids, py::object allow_mask, py::object deny_ids, py::object deny_mask) const {
    const FilterArg allow(allow_ids, allow_mask), deny(deny_ids, deny_mask);
    CompiledFilter f;
    py::gil_scoped_release release;
    std::shared_lock<RwLock> lock(lock_);
    f.count = store_->FilterRows(allow.filter, deny.filter, &f.bits);
    f.owner = this;
    f.version = store_->version();
    return f;
  }

  // One query, one thread, fully in C++: the latency path of search(). Does
  // what the Python edge does for a float32 vector (finiteness check, cosine
  // normalisation, scores in the metric's sense) without its per-call cost.
  py::tuple SearchOne(py::array_t<float, py::array::c_style> query, int32_t leaves, int32_t pre_reorder, int32_t k,
                      const std::string& measure) const {
    if (query.ndim() != 1 || query.shape(0) != v_.dim)
      throw std::invalid_argument("query must have shape (" + std::to_string(v_.dim) + ",)");
    std::vector<float> q(query.data(), query.data() + v_.dim);
    float norm2 = 0.0f;
    double norm2_exact = 0.0;
    for (float x : q) {
      if (!std::isfinite(x))
        throw std::invalid_argument("query contains NaN or infinity (first in row 0); remove or impute those values");
      norm2 += x * x;
      norm2_exact += double{x} * x;
    }
    if (!std::isfinite(norm2))
      throw std::invalid_argument(
          "query has values too large for float32 arithmetic (squared norm overflows); rescale the data");
    if (measure == "cosine") {
      if (norm2_exact == 0.0)
        throw std::invalid_argument("query row 0 is all zeros: cosine similarity is undefined for it");
      const float norm = static_cast<float>(std::sqrt(norm2_exact));
      for (float& x : q) x /= norm;
    }
    py::array_t<int64_t> ids(k);
    FloatArray scores(k);
    int64_t* ip = ids.mutable_data();
    float* sp = scores.mutable_data();
    Interruptible([&] {
      std::shared_lock<RwLock> lock(lock_);
      LiveSearchArgs a;
      a.allowed_count = store_->size();
      a.allowed_rows = [&]() { return store_->LiveRows(); };
      LiveSearch(v_, kernels_, q.data(), 1, PartitionedParams{leaves, pre_reorder, k}, 1, a, store_->size(), ip, sp);
      RowsToIds(ip, k);
    });
    if (measure == "squared_l2") {  // raw = <q,x> - |x|^2/2, so |q - x|^2 = |q|^2 - 2 raw
      // |q|^2 summed in double and rounded once, as the Python edge does (Searcher._to_metric).
      const float qnorm = static_cast<float>(norm2_exact);
      for (int32_t i = 0; i < k; ++i) sp[i] = std::max(0.0f, qnorm - 2.0f * sp[i]);
    }
    return py::make_tuple(ids, scores);
  }

  // Adds or replaces points prepared by annlib/updates.py: leaves, codes and
  // slot biases per copy (the SOAR copy's entries may be None), packed rows.
  void Upsert(Int64Array ids, Int32Array leaf0, py::object leaf1, Uint8Array codes0, py::object codes1,
              py::object bias0, py::object bias1, py::object rows) {
    if (ids.ndim() != 1) throw std::invalid_argument("ids must be 1-D");
    const int64_t m = ids.shape(0);
    if (leaf0.ndim() != 1 || leaf0.shape(0) != m) throw std::invalid_argument("leaves must have one entry per id");
    auto check_codes = [&](const Uint8Array& c) {
      if (c.ndim() != 2 || c.shape(0) != m || c.shape(1) != v_.num_blocks)
        throw std::invalid_argument("codes must have shape (len(ids), num_blocks)");
    };
    check_codes(codes0);
    const Int32Array l1 = Optional<Int32Array>(leaf1, "spill leaves", m);
    Uint8Array c1;
    if (!codes1.is_none()) {
      c1 = codes1.cast<Uint8Array>();
      check_codes(c1);
    }
    if (!leaf1.is_none() && codes1.is_none()) throw std::invalid_argument("spill leaves need spill codes");
    const FloatArray b0 = Optional<FloatArray>(bias0, "slot bias", m), b1 = Optional<FloatArray>(bias1, "slot bias", m);
    if (has_slot_bias_ && bias0.is_none()) throw std::invalid_argument("this index needs slot biases");
    NewPoints p;
    p.count = m;
    p.ids = ids.data();
    p.leaf[0] = leaf0.data();
    p.codes[0] = codes0.data();
    p.bias[0] = bias0.is_none() ? nullptr : b0.data();
    if (!leaf1.is_none()) {
      p.leaf[1] = l1.data();
      p.codes[1] = c1.data();
      p.bias[1] = bias1.is_none() ? nullptr : b1.data();
    }
    py::dict packed;
    py::array row_array;
    FloatArray row_bias, row_scale, row_offset;
    if (has_rows_) {
      if (rows.is_none()) throw std::invalid_argument("this index keeps reorder rows: pass them");
      packed = rows.cast<py::dict>();
      row_array = packed["rows"].cast<py::array>();
      if (row_array.nbytes() != m * v_.row_stride * RowElementBytes(v_.reorder_type))
        throw std::invalid_argument("rows have the wrong size");
      row_bias = DictVector<FloatArray>(packed, "row_bias", m);
      p.rows = row_array.data();
      p.row_bias = row_bias.data();
      if (v_.reorder_type == DenseType::kInt8) {
        row_scale = DictVector<FloatArray>(packed, "row_scale", m);
        row_offset = DictVector<FloatArray>(packed, "row_offset", m);
        p.row_scale = row_scale.data();
        p.row_offset = row_offset.data();
      }
    }
    bool spills = false;
    for (int64_t i = 0; p.leaf[1] != nullptr && i < m && !spills; ++i) spills = p.leaf[1][i] >= 0 && p.leaf[1][i] != p.leaf[0][i];
    py::gil_scoped_release release;
    std::unique_lock<RwLock> lock(lock_);
    store_->Upsert(p);
    if (spills) v_.spilled = true;  // copies of one point must be deduplicated from now on
    AfterChange();
  }

  void Remove(Int64Array ids) {
    if (ids.ndim() != 1) throw std::invalid_argument("ids must be 1-D");
    py::gil_scoped_release release;
    std::unique_lock<RwLock> lock(lock_);
    store_->Remove(ids.data(), ids.shape(0));
    AfterChange();
  }

  void Compact() {
    py::gil_scoped_release release;
    std::unique_lock<RwLock> lock(lock_);
    store_->Compact();
    store_->FillView(&v_);
  }

  // The index as a build would have written it (compacted first): the
  // arrays that change with updates; the others are the build's. Copied out
  // under the lock without the GIL, then handed to NumPy without a copy.
  py::dict Export() {
    Exported e;
    {
      py::gil_scoped_release release;
      std::unique_lock<RwLock> lock(lock_);
      store_->Compact();
      store_->FillView(&v_);
      CopyOut(&e);
    }
    const int64_t n = static_cast<int64_t>(e.ids.size());
    py::dict out;
    out["leaf_starts"] = ToNumpy(std::move(e.leaf_starts));
    out["slot_ids"] = ToNumpy(std::move(e.slot_ids));
    out["codes"] = ToNumpy(std::move(e.codes));
    if (has_slot_bias_) out["slot_bias"] = ToNumpy(std::move(e.slot_bias));
    out["ids"] = ToNumpy(std::move(e.ids));
    out["row_added"] = ToNumpy(std::move(e.row_added));
    if (has_rows_) {
      const int64_t stride = v_.row_stride;  // fixed at construction
      switch (v_.reorder_type) {
        case DenseType::kFloat32: out["rows"] = ToNumpy(std::move(e.rows), py::dtype::of<float>(), {n, stride}); break;
        case DenseType::kBFloat16: out["rows"] = ToNumpy(std::move(e.rows), py::dtype::of<uint16_t>(), {n, stride}); break;
        case DenseType::kInt8: out["rows"] = ToNumpy(std::move(e.rows), py::dtype::of<int8_t>(), {n, stride}); break;
      }
      out["row_bias"] = ToNumpy(std::move(e.row_bias));
      if (v_.reorder_type == DenseType::kInt8) {
        out["row_scale"] = ToNumpy(std::move(e.row_scale));
        out["row_offset"] = ToNumpy(std::move(e.row_offset));
      }
    }
    return out;
  }

  // Counts for health(): live points, rows, tombstones, added since
  // training, and the live points of every leaf.
  py::dict Stats() const {
    Int64Array leaf_live(v_.num_leaves());
    py::dict out;
    int64_t size, rows, added;
    {
      py::gil_scoped_release release;
      std::shared_lock<RwLock> lock(lock_);
      for (int32_t l = 0; l < v_.num_leaves(); ++l) leaf_live.mutable_data()[l] = store_->LiveSlots(l);
      size = store_->size();
      rows = store_->num_rows();
      added = store_->added();
    }
    out["size"] = size;
    out["rows"] = rows;
    out["added"] = added;
    out["leaf_live"] = leaf_live;
    return out;
  }

  // Which of `ids` the index holds (bool per id).
  py::array_t<bool> Contains(Int64Array ids) const {
    if (ids.ndim() != 1) throw std::invalid_argument("ids must be 1-D");
    py::array_t<bool> out(ids.shape(0));
    const int64_t* ip = ids.data();
    bool* op = out.mutable_data();
    const int64_t m = ids.shape(0);
    {
      py::gil_scoped_release release;
      std::shared_lock<RwLock> lock(lock_);
      for (int64_t i = 0; i < m; ++i) op[i] = store_->RowOf(ip[i]) >= 0;
    }
    return out;
  }

  int64_t size() const {
    py::gil_scoped_release release;
    std::shared_lock<RwLock> lock(lock_);
    return store_->size();
  }

  std::string simd_level() const { return kernels_.dense->level_name; }
  int32_t num_leaves() const { return v_.num_leaves(); }
  bool spilled() const {
    py::gil_scoped_release release;
    std::shared_lock<RwLock> lock(lock_);
    return v_.spilled;
  }

 private:
  int64_t Length(const char* name) const {
    if (!arrays_.contains(name)) throw std::invalid_argument(std::string("missing array '") + name + "'");
    return arrays_[name].cast<py::array>().size();
  }
  // Called with the lock held after an update: compacts when tombstones
  // have piled up, and points the view at the new storage.
  void AfterChange() {
    if (store_->CompactionDue()) store_->Compact();
    store_->FillView(&v_);
  }
  void RowsToIds(int64_t* rows, int64_t count) const {
    const std::vector<int64_t>& ids = store_->row_ids();
    for (int64_t i = 0; i < count; ++i)
      if (rows[i] >= 0) rows[i] = ids[rows[i]];
  }

  // What Export() copies out of the store (under the lock, no Python objects).
  struct Exported {
    std::vector<int64_t> leaf_starts, ids;
    std::vector<int32_t> slot_ids;
    std::vector<uint8_t> codes, row_added, rows;
    std::vector<float> slot_bias, row_bias, row_scale, row_offset;
  };

  void CopyOut(Exported* e) const {
    const int32_t num_leaves = store_->num_leaves();
    const int64_t group_bytes = int64_t{PaddedBlocks(v_.num_blocks)} * 16;
    e->leaf_starts.assign(num_leaves + 1, 0);
    for (int32_t l = 0; l < num_leaves; ++l) e->leaf_starts[l + 1] = e->leaf_starts[l] + store_->leaf(l).size;
    const int64_t slots = e->leaf_starts[num_leaves];
    e->slot_ids.resize(slots);
    e->codes.resize(slots / kLut16Group * group_bytes);
    if (has_slot_bias_) e->slot_bias.resize(slots);
    for (int32_t l = 0; l < num_leaves; ++l) {
      const LeafData& leaf = store_->leaf(l);
      const int64_t start = e->leaf_starts[l];
      std::copy(leaf.ids, leaf.ids + leaf.size, e->slot_ids.begin() + start);
      std::copy(leaf.codes, leaf.codes + leaf.size / kLut16Group * group_bytes,
                e->codes.begin() + start / kLut16Group * group_bytes);
      if (has_slot_bias_) std::copy(leaf.bias, leaf.bias + leaf.size, e->slot_bias.begin() + start);
    }
    const int64_t n = store_->num_rows();
    e->ids = store_->row_ids();
    e->row_added.assign(store_->row_added().begin(), store_->row_added().end());
    if (!has_rows_) return;
    const uint8_t* src = static_cast<const uint8_t*>(store_->rows());
    e->rows.assign(src, src + n * v_.row_stride * RowElementBytes(v_.reorder_type));
    e->row_bias.assign(store_->row_bias(), store_->row_bias() + n);
    if (v_.reorder_type == DenseType::kInt8) {
      e->row_scale.assign(store_->row_scale(), store_->row_scale() + n);
      e->row_offset.assign(store_->row_offset(), store_->row_offset() + n);
    }
  }

  // A vector's buffer as a NumPy array that owns it (no copy).
  template <class T>
  static py::array ToNumpy(std::vector<T>&& v, py::dtype dtype = py::dtype::of<T>(),
                           std::vector<int64_t> shape = {}) {
    auto* owned = new std::vector<T>(std::move(v));
    py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    if (shape.empty()) shape = {static_cast<int64_t>(owned->size() * sizeof(T) / dtype.itemsize())};
    return py::array(dtype, shape, owned->data(), free_when_done);
  }

  py::dict arrays_;  // keeps the build's (or load's) buffers alive
  PartitionedView v_;  // dim, blocks, row layout: fixed; leaves, rows, spilled: under lock_
  bool has_rows_ = false;       // a reorder copy (fixed at construction)
  bool has_slot_bias_ = false;  // per-slot L2 terms (fixed at construction)
  PartitionedKernels kernels_;
  std::unique_ptr<PartitionedStore> store_;
  mutable RwLock lock_;
};

}  // namespace

void RegisterPartitionedScorer(py::module_& m) {
  py::register_exception<StaleFilter>(m, "StaleFilterError");
  py::class_<CompiledFilter>(m, "CompiledFilter").def_readonly("count", &CompiledFilter::count);
  py::class_<PartitionedScorer>(m, "PartitionedScorer")
      .def(py::init<py::dict, int64_t, int32_t, int32_t, int32_t, const std::string&, const std::string&, float>(),
           py::arg("arrays"), py::arg("n"), py::arg("dim"), py::arg("num_blocks"), py::arg("dims_per_block"),
           py::arg("reorder_dtype"), py::arg("simd_level") = "", py::arg("overretrieve_factor") = 1.0f)
      .def_property_readonly("spilled", &PartitionedScorer::spilled)
      .def("search", &PartitionedScorer::Search, py::arg("queries").noconvert(), py::arg("leaves"),
           py::arg("pre_reorder"), py::arg("k"), py::arg("num_threads") = 0, py::arg("timed") = false,
           py::arg("allow_ids") = py::none(), py::arg("allow_mask") = py::none(), py::arg("deny_ids") = py::none(),
           py::arg("deny_mask") = py::none(), py::arg("reorder") = true, py::arg("compiled") = py::none())
      .def("compile_filter", &PartitionedScorer::Compile, py::arg("allow_ids") = py::none(),
           py::arg("allow_mask") = py::none(), py::arg("deny_ids") = py::none(), py::arg("deny_mask") = py::none())
      .def("search_one", &PartitionedScorer::SearchOne, py::arg("query").noconvert(), py::arg("leaves"),
           py::arg("pre_reorder"), py::arg("k"), py::arg("measure"))
      .def("upsert", &PartitionedScorer::Upsert, py::arg("ids").noconvert(), py::arg("leaf0").noconvert(),
           py::arg("leaf1"), py::arg("codes0").noconvert(), py::arg("codes1"), py::arg("bias0"), py::arg("bias1"),
           py::arg("rows"))
      .def("remove", &PartitionedScorer::Remove, py::arg("ids").noconvert())
      .def("compact", &PartitionedScorer::Compact)
      .def("export", &PartitionedScorer::Export)
      .def("stats", &PartitionedScorer::Stats)
      .def("contains", &PartitionedScorer::Contains, py::arg("ids").noconvert())
      .def("size", &PartitionedScorer::size)
      .def_property_readonly("simd_level", &PartitionedScorer::simd_level)
      .def_property_readonly("num_leaves", &PartitionedScorer::num_leaves);
}

}  // namespace annlib_bindings
