#include "partitioned_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <shared_mutex>
#include <stdexcept>
#include <string>

#include "../quantization/lut16_tables.h"
#include "../search/topk.h"
#include "../simd/dispatch.h"
#include "../util/parallel.h"
#include "array_checks.h"

namespace annlib {

PartitionedIndex::PartitionedIndex(const PartitionedArrays& a, const PartitionedOptions& options, SimdLevel level)
    : options_(options) {
  kernels_ = {&DenseKernelsFor(level), Lut16KernelFor(level), Lut16BuildFor(level), Lut16MultiKernelFor(level)};
  if (options.format_version < kOldestFormatVersion || options.format_version > kFormatVersion)
    throw std::invalid_argument("unknown index format version " + std::to_string(options.format_version));
  RequireLength("meta", a.meta, 4);
  const int64_t n = a.meta[0];
  if (n < 0 || a.meta[1] <= 0 || a.meta[2] <= 0 || a.meta[3] <= 0 || a.meta[1] > kMaxDim ||
      a.meta[2] * a.meta[3] != a.meta[1] || n > kMaxRows)  // n = 0: every point deleted
    throw std::invalid_argument("array 'meta' holds bad index dimensions");
  dim_ = static_cast<int32_t>(a.meta[1]);
  num_blocks_ = static_cast<int32_t>(a.meta[2]);
  const int32_t dims_per_block = static_cast<int32_t>(a.meta[3]);
  if (!a.leaf_starts.present() || a.leaf_starts.size < 2) throw std::invalid_argument("the index has no leaves");
  const int64_t num_leaves = a.leaf_starts.size - 1;
  if (num_leaves > kMaxRows) throw std::invalid_argument("array 'leaf_starts' is too long");
  num_leaves_ = static_cast<int32_t>(num_leaves);
  PartitionedView& v = view_;
  v.dim = dim_;
  v.num_blocks = num_blocks_;
  v.dims_per_block = dims_per_block;
  v.row_stride = RowStride(dim_);

  // Centroids: int8 panels screened, the best rescored from float32 rows
  // (format 2, and version 1 indexes built since int8 screening); version 1
  // indexes without centroid_rows score float32 panels exactly.
  const bool screened = options.format_version >= 2 || a.centroid_rows.present();
  v.centroids.type = screened ? DenseType::kInt8 : DenseType::kFloat32;
  v.centroids.n = num_leaves;
  v.centroids.dim = dim_;
  RequireBytes("centroid_panels", a.centroid_panels, v.centroids.num_panels() * PanelBytes(v.centroids.type, dim_));
  v.centroids.panels = a.centroid_panels.data;
  const int64_t padded = v.centroids.num_panels() * kPanelWidth;
  v.centroids.bias = RequirePanelFloats("centroid_bias", a.centroid_bias, padded, num_leaves);
  if (screened) {
    v.centroids.scale = RequirePanelFloats("centroid_scale", a.centroid_scale, padded, num_leaves);
    v.centroids.offset = RequirePanelFloats("centroid_offset", a.centroid_offset, padded, num_leaves);
    v.centroids.scaled_sums = RequirePanelFloats("centroid_scaled_sums", a.centroid_scaled_sums, padded, num_leaves);
    v.centroids.sums = RequireLength("centroid_sums", a.centroid_sums, padded);
    v.centroid_rows = RequireFinite("centroid_rows", a.centroid_rows, num_leaves * v.row_stride);
    v.centroid_row_bias = RequireFinite("centroid_row_bias", a.centroid_row_bias, num_leaves);
  }
  if (a.centroids.present()) RequireFinite("centroids", a.centroids, num_leaves * dim_);
  if (a.leaf_cv_at_training.present()) RequireFinite("leaf_cv_at_training", a.leaf_cv_at_training, 1);

  const int64_t* st = a.leaf_starts.data;
  for (int64_t l = 0; l < num_leaves; ++l)
    if (st[l] < 0 || st[l] > st[l + 1] || st[l] % kLut16Group != 0)
      throw std::invalid_argument("leaf_starts must be increasing multiples of 32");
  const int64_t slots = st[num_leaves];
  if (slots % kLut16Group != 0 || slots > 2 * (n + 32 * num_leaves))
    throw std::invalid_argument("leaf_starts must end on a multiple of 32 within the slots the rows need");
  const int32_t* slot_ids = RequireLength("slot_ids", a.slot_ids, slots);
  // Every row is stored once, or twice when SOAR spilled it.
  std::vector<uint8_t> copies(n, 0);
  for (int64_t i = 0; i < slots; ++i) {
    const int32_t row = slot_ids[i];
    if (row < -1 || row >= n) throw std::invalid_argument("slot_ids out of range");
    if (row >= 0 && ++copies[row] > 2) throw std::invalid_argument("slot_ids hold a datapoint more than twice");
  }
  for (int64_t r = 0; r < n; ++r) {
    if (copies[r] == 0) throw std::invalid_argument("slot_ids miss datapoint " + std::to_string(r));
    if (copies[r] == 2) v.spilled = true;
  }
  v.lut_centers = RequireFinite("lut_centers", a.lut_centers, int64_t{num_blocks_} * dims_per_block * 16);

  StoreArrays base;
  base.num_leaves = num_leaves_;
  base.num_blocks = num_blocks_;
  base.leaf_starts = st;
  base.slot_ids = slot_ids;
  has_slot_bias_ = a.slot_bias.present();
  if (has_slot_bias_ != (options.metric == Metric::kSquaredL2))
    throw std::invalid_argument("array 'slot_bias' must be present exactly for squared_l2");
  if (has_slot_bias_) base.slot_bias = RequireFinite("slot_bias", a.slot_bias, slots);
  base.codes = RequireLength("codes", a.codes, slots / kLut16Group * PaddedBlocks(num_blocks_) * 16);
  base.num_rows = n;
  if (a.ids.present()) base.ids = RequireLength("ids", a.ids, n);
  if (a.row_added.present()) base.row_added = RequireLength("row_added", a.row_added, n);
  base.row_stride = v.row_stride;
  if (options.reorder) {
    v.reorder_type = base.row_type = options.reorder_type;
    RequireBytes("rows", a.rows, n * v.row_stride * RowElementBytes(v.reorder_type));
    base.rows = a.rows.data;
    base.row_bias = RequireFinite("row_bias", a.row_bias, n);
    if (v.reorder_type == DenseType::kInt8) {
      base.row_scale = RequireFinite("row_scale", a.row_scale, n);
      base.row_offset = RequireFinite("row_offset", a.row_offset, n);
    }
  }
  store_ = std::make_unique<PartitionedStore>(base);
  store_->FillView(&view_);
}

void PartitionedIndex::CheckK(int32_t k) const {
  const int64_t held = size();
  if (k < 1) throw std::invalid_argument("final_num_neighbors must be >= 1, got " + std::to_string(k));
  if (k > held)
    throw std::invalid_argument("final_num_neighbors=" + std::to_string(k) + " exceeds the number of indexed points (" +
                                std::to_string(held) + ")");
}

void PartitionedIndex::Search(const float* queries, int64_t nq, const PartitionedSearchArgs& args, int64_t* out_ids,
                              float* out_scores) const {
  if (args.k < 1) throw std::invalid_argument("final_num_neighbors must be >= 1");
  if (args.leaves < 1 || args.leaves > num_leaves_)
    throw std::invalid_argument("leaves_to_search must be in [1, " + std::to_string(num_leaves_) + "]");
  if (args.pre_reorder < args.k)
    throw std::invalid_argument("pre_reorder_num_neighbors (" + std::to_string(args.pre_reorder) +
                                ") must be >= final_num_neighbors (" + std::to_string(args.k) + ")");
  std::vector<float> normalized;
  const float* q = PrepareRows(queries, nq, dim_, options_.metric, nq == 1 ? "query" : "queries", &normalized);
  {
    std::shared_lock<RwLock> lock(lock_);
    PartitionedView v = view_;
    if (!args.reorder) v.rows = nullptr;
    const RowIds& rows = store_->row_ids();
    LiveSearchArgs live;
    std::vector<uint64_t> bits;
    const AllowedRows allowed = Allowed(args.compiled, args.allow, args.deny, &bits);
    live.allowed_count = allowed.count;
    live.allowed = allowed.bits != nullptr ? allowed.bits->data() : nullptr;
    live.fill_short = args.reorder;
    live.allowed_rows = [&]() {
      if (allowed.bits == nullptr) return rows.LiveRows();
      return RowIds::RowsOf(*allowed.bits, rows.num_rows());
    };
    LiveSearch(v, kernels_, q, nq, PartitionedParams{args.leaves, args.pre_reorder, args.k}, args.num_threads, live,
               store_->size(), out_ids, out_scores, args.times);
    rows.ToIds(out_ids, nq * args.k);
  }
  RawToMetric(options_.metric, q, nq, dim_, out_scores, args.k);
}

void PartitionedIndex::ChooseLeaves(const float* queries, int64_t nq, int32_t count, int num_threads,
                                    Candidate* out) const {
  if (count < 1 || count > num_leaves_)
    throw std::invalid_argument("leaves_to_search must be in [1, " + std::to_string(num_leaves_) + "]");
  std::vector<float> normalized;
  const float* q = PrepareRows(queries, nq, dim_, options_.metric, nq == 1 ? "query" : "queries", &normalized);
  std::shared_lock<RwLock> lock(lock_);  // the centroids never change; the view is copied whole
  const PartitionedView v = view_;
  lock.unlock();
  annlib::ChooseLeaves(v, kernels_, q, nq, count, num_threads, out);
}

int64_t PartitionedIndex::SearchCandidates(const float* queries, int64_t nq, const CandidateSearchArgs& args,
                                           int64_t* out_ids, float* out_approx, float* out_exact) const {
  if (args.wanted < 1) throw std::invalid_argument("wanted must be >= 1");
  if (args.top_k < 0 || args.top_k > args.wanted) throw std::invalid_argument("top_k must be in [0, wanted]");
  const bool top = args.top_k > 0;
  const int32_t width = top ? args.top_k : args.wanted;
  if (args.exact) {
    if (top) throw std::invalid_argument("top_k is for a probed search, not an exact one");
    if (!options_.reorder) throw std::invalid_argument("an exact search needs the reorder copy");
  } else {
    if (args.probes == nullptr || args.num_probes < 1) throw std::invalid_argument("give the leaves to scan");
    for (int64_t j = 0; j < nq * args.num_probes; ++j) {
      const Candidate& probe = args.probes[j];
      if (probe.id < -1 || probe.id >= num_leaves_) throw std::invalid_argument("a probed leaf is out of range");
      if (probe.id >= 0 && !std::isfinite(probe.score)) throw std::invalid_argument("a leaf score is not finite");
    }
  }
  std::vector<float> normalized;
  const float* q = PrepareRows(queries, nq, dim_, options_.metric, nq == 1 ? "query" : "queries", &normalized);
  std::shared_lock<RwLock> lock(lock_);
  PartitionedView v = view_;
  const RowIds& rows = store_->row_ids();
  std::vector<uint64_t> bits;
  const AllowedRows allowed = Allowed(args.compiled, args.allow, args.deny, &bits);
  if (allowed.count == 0) {
    std::fill(out_ids, out_ids + nq * width, int64_t{-1});
    if (!top) std::fill(out_approx, out_approx + nq * width, -std::numeric_limits<float>::infinity());
    std::fill(out_exact, out_exact + nq * width, -std::numeric_limits<float>::infinity());
    return 0;
  }
  if (args.exact) {
    const std::vector<int32_t> allowed_rows =
        allowed.bits != nullptr ? RowIds::RowsOf(*allowed.bits, rows.num_rows()) : rows.LiveRows();
    ExactRowSearch(v, kernels_, q, nq, allowed_rows.data(), static_cast<int64_t>(allowed_rows.size()), width,
                   args.num_threads, out_ids, out_exact);
    std::copy(out_exact, out_exact + nq * width, out_approx);
  } else {
    PartitionedParams p{args.num_probes, args.wanted, width};
    p.allowed = allowed.bits != nullptr ? allowed.bits->data() : nullptr;
    p.probes = args.probes;
    p.out_approx = top ? nullptr : out_approx;
    PartitionedSearch(v, kernels_, q, nq, p, args.num_threads, out_ids, out_exact);
  }
  rows.ToIds(out_ids, nq * width);
  return allowed.count;
}

int64_t PartitionedIndex::AllowedCount(const CompiledFilter* compiled, const IdFilter& allow,
                                       const IdFilter& deny) const {
  std::shared_lock<RwLock> lock(lock_);
  std::vector<uint64_t> bits;
  return Allowed(compiled, allow, deny, &bits).count;
}

int64_t PartitionedIndex::TotalSlots() const {
  std::shared_lock<RwLock> lock(lock_);
  int64_t slots = 0;
  for (int32_t l = 0; l < num_leaves_; ++l) slots += store_->leaf(l).size;
  return slots;
}

PartitionedIndex::AllowedRows PartitionedIndex::Allowed(const CompiledFilter* compiled, const IdFilter& allow,
                                                       const IdFilter& deny, std::vector<uint64_t>* own) const {
  if (compiled != nullptr) {
    if (compiled->owner != this || compiled->version != store_->version()) throw StaleFilter();
    return {&compiled->bits, compiled->count};
  }
  if (!allow.present() && !deny.present()) return {nullptr, store_->size()};
  const int64_t count = store_->row_ids().FilterRows(allow, deny, own);
  return {own, count};
}

CompiledFilter PartitionedIndex::Compile(const IdFilter& allow, const IdFilter& deny) const {
  CompiledFilter f;
  std::shared_lock<RwLock> lock(lock_);
  f.count = store_->row_ids().FilterRows(allow, deny, &f.bits);
  f.owner = this;
  f.version = store_->version();
  return f;
}

void PartitionedIndex::Upsert(const NewPoints& p) {
  for (int c = 0; c < 2; ++c)
    if ((p.bias[c] != nullptr) != (has_slot_bias_ && p.leaf[c] != nullptr))
      throw std::invalid_argument("slot biases must come with each copy exactly for squared_l2");
  if (options_.reorder != (p.rows != nullptr))
    throw std::invalid_argument(options_.reorder ? "this index keeps reorder rows: pass them" : "this index keeps no reorder rows");
  if (options_.reorder && p.rows_bytes != p.count * view_.row_stride * RowElementBytes(view_.reorder_type))
    throw std::invalid_argument("rows have the wrong size");
  if (options_.reorder && options_.reorder_type == DenseType::kInt8 && (p.row_scale == nullptr || p.row_offset == nullptr))
    throw std::invalid_argument("int8 reorder rows need row_scale and row_offset");
  bool spills = false;
  for (int64_t i = 0; p.leaf[1] != nullptr && i < p.count && !spills; ++i)
    spills = p.leaf[1][i] >= 0 && p.leaf[1][i] != p.leaf[0][i];
  std::unique_lock<RwLock> lock(lock_);
  store_->Upsert(p);
  if (spills) view_.spilled = true;  // copies of one point must be deduplicated from now on
  AfterChange();
}

void PartitionedIndex::Remove(const int64_t* ids, int64_t count) {
  std::unique_lock<RwLock> lock(lock_);
  store_->Remove(ids, count);
  AfterChange();
}

void PartitionedIndex::Compact() {
  std::unique_lock<RwLock> lock(lock_);
  store_->Compact();
  store_->FillView(&view_);
}

void PartitionedIndex::AfterChange() {
  if (store_->CompactionDue()) store_->Compact();
  store_->FillView(&view_);
}

PartitionedExport PartitionedIndex::Export() {
  PartitionedExport e;
  std::unique_lock<RwLock> lock(lock_);
  store_->Compact();
  store_->FillView(&view_);
  const int64_t group_bytes = int64_t{PaddedBlocks(num_blocks_)} * 16;
  e.leaf_starts.assign(num_leaves_ + 1, 0);
  for (int32_t l = 0; l < num_leaves_; ++l) e.leaf_starts[l + 1] = e.leaf_starts[l] + store_->leaf(l).size;
  const int64_t slots = e.leaf_starts[num_leaves_];
  e.slot_ids.resize(slots);
  e.codes.resize(slots / kLut16Group * group_bytes);
  if (has_slot_bias_) e.slot_bias.resize(slots);
  for (int32_t l = 0; l < num_leaves_; ++l) {
    const LeafData& leaf = store_->leaf(l);
    const int64_t start = e.leaf_starts[l];
    std::copy(leaf.ids, leaf.ids + leaf.size, e.slot_ids.begin() + start);
    std::copy(leaf.codes, leaf.codes + leaf.size / kLut16Group * group_bytes,
              e.codes.begin() + start / kLut16Group * group_bytes);
    if (has_slot_bias_) std::copy(leaf.bias, leaf.bias + leaf.size, e.slot_bias.begin() + start);
  }
  const int64_t n = store_->num_rows();
  e.ids = store_->row_ids().ids();
  e.row_added = store_->row_added();
  if (!options_.reorder) return e;
  const uint8_t* src = static_cast<const uint8_t*>(store_->rows());
  e.rows.assign(src, src + n * view_.row_stride * RowElementBytes(view_.reorder_type));
  e.row_bias.assign(store_->row_bias(), store_->row_bias() + n);
  if (view_.reorder_type == DenseType::kInt8) {
    e.row_scale.assign(store_->row_scale(), store_->row_scale() + n);
    e.row_offset.assign(store_->row_offset(), store_->row_offset() + n);
  }
  return e;
}

PartitionedStats PartitionedIndex::Stats() const {
  PartitionedStats s;
  s.leaf_live.resize(num_leaves_);
  std::shared_lock<RwLock> lock(lock_);
  for (int32_t l = 0; l < num_leaves_; ++l) s.leaf_live[l] = store_->LiveSlots(l);
  s.size = store_->size();
  s.rows = store_->num_rows();
  s.added = store_->added();
  return s;
}

void PartitionedIndex::Contains(const int64_t* ids, int64_t count, bool* out) const {
  std::shared_lock<RwLock> lock(lock_);
  for (int64_t i = 0; i < count; ++i) out[i] = store_->row_ids().RowOf(ids[i]) >= 0;
}

void PartitionedIndex::LeavesOf(const int64_t* ids, int64_t count, int32_t* out) const {
  std::shared_lock<RwLock> lock(lock_);
  for (int64_t i = 0; i < count; ++i) {
    const int32_t row = store_->row_ids().RowOf(ids[i]);
    out[2 * i] = row >= 0 ? store_->LeavesOf(row)[0] : -1;
    out[2 * i + 1] = row >= 0 ? store_->LeavesOf(row)[1] : -1;
  }
}

void PartitionedIndex::AhRanksOverGrid(const float* queries, int64_t nq, const int32_t* grid, int32_t num_grid,
                                       int32_t count, const int64_t* wanted_ids, int32_t m, int num_threads,
                                       int32_t* out) const {
  std::vector<float> normalized;
  const float* q = PrepareRows(queries, nq, dim_, options_.metric, "queries", &normalized);
  std::shared_lock<RwLock> lock(lock_);
  const RowIds& rows = store_->row_ids();
  std::vector<int32_t> wanted(nq * m);
  for (int64_t j = 0; j < nq * m; ++j) wanted[j] = wanted_ids[j] < 0 ? -1 : rows.RowOf(wanted_ids[j]);
  annlib::AhRanksOverGrid(view_, kernels_, q, nq, grid, num_grid, count, wanted.data(), m, num_threads, out);
}

void PartitionedIndex::LeafOrder(const float* queries, int64_t nq, int num_threads, int32_t* out) const {
  std::vector<float> normalized;
  const float* q = PrepareRows(queries, nq, dim_, options_.metric, "queries", &normalized);
  const int64_t stride = view_.centroids.num_panels() * kPanelWidth;
  std::vector<float> scores(nq * stride);
  if (view_.centroid_rows != nullptr) {  // exact scores from the float32 rows
    std::vector<int32_t> all(num_leaves_);
    std::iota(all.begin(), all.end(), 0);
    ParallelFor(nq, num_threads, [&](int64_t i) {
      std::vector<float> padded(view_.row_stride, 0.0f);
      std::copy(q + i * dim_, q + (i + 1) * dim_, padded.begin());
      RescoreArgs r{};
      r.type = DenseType::kFloat32;
      r.rows = view_.centroid_rows;
      r.stride = view_.row_stride;
      r.bias = view_.centroid_row_bias;
      r.query = padded.data();
      r.ids = all.data();
      r.count = num_leaves_;
      r.out = scores.data() + i * stride;
      kernels_.dense->rescore(r);
    });
  } else {
    DenseScores(view_.centroids, *kernels_.dense, q, nq, scores.data(), stride, num_threads);
  }
  ParallelFor(nq, num_threads, [&](int64_t i) {
    std::vector<Candidate> leaves(num_leaves_);
    for (int32_t l = 0; l < num_leaves_; ++l) leaves[l] = Candidate{scores[i * stride + l], l};
    std::sort(leaves.begin(), leaves.end(), BetterOrder());
    for (int32_t l = 0; l < num_leaves_; ++l) out[i * num_leaves_ + l] = leaves[l].id;
  });
}

void PartitionedIndex::LeafSlots(int64_t* out) const {
  std::shared_lock<RwLock> lock(lock_);
  for (int32_t l = 0; l < num_leaves_; ++l) out[l] = store_->leaf(l).size;
}

std::vector<int64_t> PartitionedIndex::Ids() const {
  std::shared_lock<RwLock> lock(lock_);
  std::vector<int64_t> ids;
  ids.reserve(store_->size());
  for (int64_t id : store_->row_ids().ids())
    if (id >= 0) ids.push_back(id);
  return ids;
}

void PartitionedIndex::Vectors(const int64_t* ids, int64_t count, float* out) const {
  if (!options_.reorder) throw std::invalid_argument("this index keeps no reorder copy to read vectors from");
  std::shared_lock<RwLock> lock(lock_);
  const int64_t stride = view_.row_stride;
  for (int64_t i = 0; i < count; ++i) {
    const int32_t row = store_->row_ids().RowOf(ids[i]);
    if (row < 0) throw std::invalid_argument("id " + std::to_string(ids[i]) + " is not in the index");
    float* dst = out + i * dim_;
    switch (view_.reorder_type) {
      case DenseType::kFloat32: {
        const float* src = static_cast<const float*>(store_->rows()) + row * stride;
        std::copy(src, src + dim_, dst);
        break;
      }
      case DenseType::kBFloat16: {
        const uint16_t* src = static_cast<const uint16_t*>(store_->rows()) + row * stride;
        for (int32_t t = 0; t < dim_; ++t) {
          const uint32_t bits = uint32_t{src[t]} << 16;
          std::memcpy(&dst[t], &bits, sizeof bits);
        }
        break;
      }
      case DenseType::kInt8: {
        const int8_t* src = static_cast<const int8_t*>(store_->rows()) + row * stride;
        const float scale = store_->row_scale()[row], offset = store_->row_offset()[row];
        for (int32_t t = 0; t < dim_; ++t) dst[t] = src[t] * scale + offset;
        break;
      }
    }
  }
}

int64_t PartitionedIndex::size() const {
  std::shared_lock<RwLock> lock(lock_);
  return store_->size();
}

bool PartitionedIndex::spilled() const {
  std::shared_lock<RwLock> lock(lock_);
  return view_.spilled;
}

}  // namespace annlib
