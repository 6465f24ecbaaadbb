// Search over a changing, optionally filtered index: chooses between the
// partitioned search and exact search over the allowed rows, and makes sure
// k results come back whenever k allowed points exist.
//
// A filter that keeps a share s of the points leaves about s times as many
// allowed candidates in each leaf, so the partitioned search visits more
// leaves: leaves / sqrt(s) (at most all of them). The candidates are all
// allowed, so the reorder budget goes further than unfiltered; on the words
// dev set (s from 5% to 50%) this kept recall at or above the unfiltered
// recall, while leaves / s cost up to 2.4x the time for 0.01-0.02 more.
// When scoring the allowed rows exactly costs less than that (a selective
// filter, under about 7% there), the exact search runs instead.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "partitioned_search.h"

namespace annlib {

struct LiveSearchArgs {
  const uint64_t* allowed = nullptr;  // bit per row, nullptr = every live row
  int64_t allowed_count = 0;          // rows allowed (live rows without a filter)
  // The allowed rows, ascending; computed only when exact search needs them.
  std::function<std::vector<int32_t>()> allowed_rows;
  // Search again, exactly, the queries that found fewer than k results.
  bool fill_short = true;
};

// Which path a search takes, and with how many leaves.
struct LivePlan {
  bool exact = false;
  int32_t leaves = 0;
};

LivePlan PlanLiveSearch(const PartitionedView& v, const PartitionedParams& p, const LiveSearchArgs& a,
                        int64_t live);

// The same plan from counts alone, which a sharded index's coordinator sums
// over its shards: slots over all leaves, the rows a filter allows (filtered
// false: no filter) of the `live` ones, whether a reorder copy exists.
struct PlanCounts {
  int32_t num_leaves = 1, dim = 1, num_blocks = 1;
  int64_t slots = 0;
  bool filtered = false;
  int64_t allowed_count = 0, live = 0;
  bool has_rows = false;
};
LivePlan PlanSearch(const PlanCounts& c, int32_t leaves, int32_t pre_reorder);

// Outputs [nq][k] of rows (not user ids) and raw scores, padded with -1/-inf.
void LiveSearch(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries, int64_t nq,
                const PartitionedParams& p, int num_threads, const LiveSearchArgs& a, int64_t live,
                int64_t* out_rows, float* out_scores, StageTimes* times = nullptr);

}  // namespace annlib
