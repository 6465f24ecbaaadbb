#include "filtered_search.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../quantization/lut16_tables.h"  // PaddedBlocks

namespace annlib {
namespace {

// Relative costs, in LUT16 lookups (one block of one point, single query,
// AVX-512): an exactly rescored dimension of a gathered reorder row, and an
// int8 centroid dimension. Measured with bench/bench_updates.py on words.
constexpr double kRowDimCost = 2.0;
constexpr double kCentroidDimCost = 0.5;

}  // namespace

LivePlan PlanSearch(const PlanCounts& c, int32_t leaves, int32_t pre_reorder) {
  LivePlan plan;
  plan.leaves = leaves;
  if (!c.filtered || c.allowed_count >= c.live) return plan;
  const double share = std::max(1.0, double(c.allowed_count)) / std::max<int64_t>(1, c.live);
  plan.leaves = static_cast<int32_t>(std::min<double>(c.num_leaves, std::ceil(leaves / std::sqrt(share))));
  if (!c.has_rows) return plan;
  const double blocks = PaddedBlocks(c.num_blocks);
  const double partitioned = c.num_leaves * double(c.dim) * kCentroidDimCost +
                             double(c.slots) * plan.leaves / c.num_leaves * blocks +
                             double(pre_reorder) * c.dim * kRowDimCost;
  const double exact = double(c.allowed_count) * c.dim * kRowDimCost;
  plan.exact = exact <= partitioned;
  return plan;
}

LivePlan PlanLiveSearch(const PartitionedView& v, const PartitionedParams& p, const LiveSearchArgs& a,
                        int64_t live) {
  PlanCounts c;
  c.num_leaves = v.num_leaves();
  c.dim = v.dim;
  c.num_blocks = v.num_blocks;
  for (int32_t l = 0; l < c.num_leaves; ++l) c.slots += v.leaves[l].size;
  c.filtered = a.allowed != nullptr;
  c.allowed_count = a.allowed_count;
  c.live = live;
  c.has_rows = v.rows != nullptr;
  return PlanSearch(c, p.leaves, p.pre_reorder);
}

void LiveSearch(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries, int64_t nq,
                const PartitionedParams& p, int num_threads, const LiveSearchArgs& a, int64_t live,
                int64_t* out_rows, float* out_scores, StageTimes* times) {
  const int64_t k = p.k;
  if (a.allowed_count == 0) {
    std::fill(out_rows, out_rows + nq * k, int64_t{-1});
    std::fill(out_scores, out_scores + nq * k, -std::numeric_limits<float>::infinity());
    return;
  }
  const LivePlan plan = PlanLiveSearch(v, p, a, live);
  std::vector<int32_t> rows;
  if (plan.exact) {
    rows = a.allowed_rows();
    ExactRowSearch(v, kernels, queries, nq, rows.data(), static_cast<int64_t>(rows.size()), p.k, num_threads,
                   out_rows, out_scores);
    return;
  }
  PartitionedParams widened = p;
  widened.leaves = plan.leaves;
  widened.allowed = a.allowed;
  PartitionedSearch(v, kernels, queries, nq, widened, num_threads, out_rows, out_scores, times);
  if (!a.fill_short) return;
  // Queries whose leaves held fewer than k allowed points (a filter, or
  // deletes that emptied leaves) are searched again over every allowed row.
  const int64_t want = std::min<int64_t>(k, a.allowed_count);
  std::vector<int64_t> short_queries;
  for (int64_t i = 0; i < nq; ++i) {
    int64_t found = 0;
    for (int64_t j = 0; j < k; ++j) found += out_rows[i * k + j] >= 0;
    if (found < want) short_queries.push_back(i);
  }
  if (short_queries.empty()) return;
  std::vector<float> subset(short_queries.size() * v.dim);
  for (size_t j = 0; j < short_queries.size(); ++j)
    std::copy(queries + short_queries[j] * v.dim, queries + (short_queries[j] + 1) * v.dim,
              subset.begin() + j * v.dim);
  std::vector<int64_t> sub_rows(short_queries.size() * k);
  std::vector<float> sub_scores(short_queries.size() * k);
  const int64_t m = static_cast<int64_t>(short_queries.size());
  if (v.rows != nullptr) {
    rows = a.allowed_rows();
    ExactRowSearch(v, kernels, subset.data(), m, rows.data(), static_cast<int64_t>(rows.size()), p.k, num_threads,
                   sub_rows.data(), sub_scores.data());
  } else {
    widened.leaves = v.num_leaves();
    PartitionedSearch(v, kernels, subset.data(), m, widened, num_threads, sub_rows.data(), sub_scores.data());
  }
  for (int64_t j = 0; j < m; ++j) {
    std::copy(sub_rows.begin() + j * k, sub_rows.begin() + (j + 1) * k, out_rows + short_queries[j] * k);
    std::copy(sub_scores.begin() + j * k, sub_scores.begin() + (j + 1) * k, out_scores + short_queries[j] * k);
  }
}

}  // namespace annlib
