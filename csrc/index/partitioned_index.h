// The quantized partitioning index as one engine object (the ScaNN pipeline:
// k-means leaves, 4-bit AH codes scanned with LUT16, exact reordering, SOAR),
// over the saved arrays (index/index_format.h) and the changes made since
// (search/partitioned_store.h).
//
// It checks the arrays once, owns the store, the reader-writer lock, compiled
// filters and the translation between rows and user ids, and takes queries as
// the caller has them: rows are checked and prepared for the metric, and
// scores come back in the metric's sense (search/metric.h), on every path.
//
// Concurrency: searches hold the lock shared from the first scanned leaf to
// the last id they translate; upserts, deletes, compaction and export hold it
// alone, so a search sees the index wholly before or wholly after an update.
// Every method may be called from any thread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../search/filtered_search.h"
#include "../search/metric.h"
#include "../search/partitioned_search.h"
#include "../search/partitioned_store.h"
#include "../simd/dispatch.h"
#include "../util/rw_lock.h"
#include "index_format.h"

namespace annlib {

struct PartitionedOptions {
  Metric metric = Metric::kDotProduct;
  bool reorder = false;                       // the arrays hold a reorder copy
  DenseType reorder_type = DenseType::kFloat32;
  int32_t format_version = kFormatVersion;    // of the arrays (index_format.h)
};

// A filter turned into a row bitmask once, for many searches. Valid for the
// index and the store version it was made at (Stale() after any update).
struct CompiledFilter {
  std::vector<uint64_t> bits;
  int64_t count = 0;
  const void* owner = nullptr;
  uint64_t version = 0;
};

struct StaleFilter : std::runtime_error {
  StaleFilter() : std::runtime_error("the index changed since this filter was compiled") {}
};

struct PartitionedSearchArgs {
  int32_t leaves = 1;       // in [1, num_leaves]
  int32_t pre_reorder = 1;  // AH candidates reordered (>= k); beyond the points held: all of them
  int32_t k = 1;
  int num_threads = 1;      // 0 = all cores
  IdFilter allow, deny;     // or:
  const CompiledFilter* compiled = nullptr;
  // false: the AH candidates of exactly `leaves` leaves, no reordering and no
  // exact fill-in (the tuner's view of the scan).
  bool reorder = true;
  StageTimes* times = nullptr;  // per-stage nanoseconds (single-threaded calls)
};

// A shard's part of a sharded search (annlib/distributed, search/shard_merge.h).
struct CandidateSearchArgs {
  const Candidate* probes = nullptr;  // [nq][num_probes] leaves to scan (ChooseLeaves; -1 skipped)
  int32_t num_probes = 0;
  int32_t wanted = 1;       // distinct candidates per query
  // The exact best `wanted` over every allowed row instead of the probed
  // leaves (needs the reorder copy): a sharded search's exact path and fill-in.
  bool exact = false;
  // > 0 (not with exact): the top_k of the `wanted` candidates by reordered
  // score, best first, as one index's search returns them (a query whose
  // leaves all lie on this shard); out_approx is then not written and the
  // outputs are [nq][top_k].
  int32_t top_k = 0;
  int num_threads = 1;      // 0 = all cores
  IdFilter allow, deny;     // or:
  const CompiledFilter* compiled = nullptr;
};

// Counts for health().
struct PartitionedStats {
  int64_t size = 0, rows = 0, added = 0;
  std::vector<int64_t> leaf_live;
};

// The arrays that change with updates, as a save writes them (compacted).
struct PartitionedExport {
  std::vector<int64_t> leaf_starts, ids;
  std::vector<int32_t> slot_ids;
  std::vector<uint8_t> codes, row_added, rows;
  std::vector<float> slot_bias, row_bias, row_scale, row_offset;
};

class PartitionedIndex {
 public:
  // Checks the arrays (std::invalid_argument names what is wrong); the
  // buffers must outlive the index.
  PartitionedIndex(const PartitionedArrays& arrays, const PartitionedOptions& options, SimdLevel level);

  // queries [nq][dim] as given (checked, prepared for the metric here) ->
  // out_ids [nq][k] user ids and out_scores in the metric's sense (AH scores
  // with reorder = false); -1 / worst-score padding.
  // Throws StaleFilter for a compiled filter made before an update.
  void Search(const float* queries, int64_t nq, const PartitionedSearchArgs& args, int64_t* out_ids,
              float* out_scores) const;

  // Throws unless 1 <= k <= the points held: a caller checks before it
  // allocates k results per query. Points deleted between the check and the
  // search leave -1 ids in the tail, as a filter allowing fewer than k does.
  void CheckK(int32_t k) const;

  CompiledFilter Compile(const IdFilter& allow, const IdFilter& deny) const;

  // The `count` leaves a search scans for each query, best first, with their
  // exact centroid scores: out [nq][count]. A sharded index's coordinator
  // chooses them once and sends each shard the ones it holds.
  void ChooseLeaves(const float* queries, int64_t nq, int32_t count, int num_threads, Candidate* out) const;
  // For each query, the args.wanted best distinct candidates of the probed
  // leaves by approximate score with their approximate and reordered scores,
  // unordered, -1 / -inf padded: out_* [nq][args.wanted]. Scores are raw
  // (metric.h), comparable across shards; search/shard_merge.h merges them.
  // Returns the rows the filter allows (the live rows without one).
  int64_t SearchCandidates(const float* queries, int64_t nq, const CandidateSearchArgs& args, int64_t* out_ids,
                           float* out_approx, float* out_exact) const;
  // The rows a filter allows (the live rows without one) and the code slots
  // of every leaf, padding included: what a coordinator plans a search by.
  // A compiled filter (throws StaleFilter if made before an update) or the lists.
  int64_t AllowedCount(const CompiledFilter* compiled, const IdFilter& allow, const IdFilter& deny) const;
  int64_t TotalSlots() const;

  // Adds or replaces points placed outside the lock (annlib/quantized/placement.py).
  void Upsert(const NewPoints& points);
  // All or nothing: an id not held throws before anything is deleted.
  void Remove(const int64_t* ids, int64_t count);
  void Compact();
  PartitionedExport Export();  // compacts first

  PartitionedStats Stats() const;
  void Contains(const int64_t* ids, int64_t count, bool* out) const;
  // The leaves holding each id ([count][2], -1: none or not held), primary first.
  void LeavesOf(const int64_t* ids, int64_t count, int32_t* out) const;
  // Every leaf by exact centroid score, best first ([nq][num_leaves]), for
  // queries prepared as Search prepares them.
  void LeafOrder(const float* queries, int64_t nq, int num_threads, int32_t* out) const;
  // The tuner's rank table (search/partitioned_search.h, AhRanksOverGrid):
  // wanted_ids [nq][m] user ids (-1 or an id not held: never found) ->
  // out [num_grid][nq][m] positions among the best `count` AH candidates of
  // each query's best grid[g] leaves, `count` where absent.
  void AhRanksOverGrid(const float* queries, int64_t nq, const int32_t* grid, int32_t num_grid, int32_t count,
                       const int64_t* wanted_ids, int32_t m, int num_threads, int32_t* out) const;
  // Code slots per leaf, padding included ([num_leaves]).
  void LeafSlots(int64_t* out) const;
  // The ids held, in row order.
  std::vector<int64_t> Ids() const;
  // The reorder copy's vectors of these ids as float32 [count][dim] (rounded
  // values for bfloat16 and int8 copies); an id not held throws.
  void Vectors(const int64_t* ids, int64_t count, float* out) const;

  int64_t size() const;
  bool spilled() const;
  int32_t num_leaves() const { return num_leaves_; }
  int32_t dim() const { return dim_; }
  int32_t num_blocks() const { return num_blocks_; }
  bool has_reorder() const { return options_.reorder; }
  DenseType reorder_type() const { return options_.reorder_type; }
  bool has_slot_bias() const { return has_slot_bias_; }
  Metric metric() const { return options_.metric; }
  const char* simd_level() const { return kernels_.dense->level_name; }

 private:
  void AfterChange();  // with the lock held
  // The rows a search may return, with the lock held: a compiled filter's bitmask
  // (StaleFilter unless made by this index at its current version), the lists'
  // bitmask built into *own, or bits == nullptr: every live row.
  struct AllowedRows {
    const std::vector<uint64_t>* bits = nullptr;
    int64_t count = 0;
  };
  AllowedRows Allowed(const CompiledFilter* compiled, const IdFilter& allow, const IdFilter& deny,
                      std::vector<uint64_t>* own) const;

  PartitionedOptions options_;
  int32_t dim_ = 0, num_blocks_ = 0, num_leaves_ = 0;
  bool has_slot_bias_ = false;
  PartitionedKernels kernels_;
  PartitionedView view_;  // dim, blocks, row layout: fixed; leaves, rows, spilled: under lock_
  std::unique_ptr<PartitionedStore> store_;
  mutable RwLock lock_;
};

}  // namespace annlib
