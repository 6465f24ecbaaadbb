// Search driver of the quantized partitioning index (the ScaNN pipeline):
//   1. score the query against every leaf centroid (dense kernels in raw
//      mode, on int8 panels), keep the best leaves, rescore those exactly;
//   2. build the query's LUT16 table from the AH codebooks;
//   3. scan the codes of those leaves, best leaf first, keeping the best
//      `pre_reorder` candidates (approximate score = leaf score + LUT sum) in
//      a candidate buffer (kernels/candidates.h);
//      With SOAR (a point may sit in two leaves) the buffer keeps the best
//      copy of each id only, so the candidates are `pre_reorder` distinct ids;
//   4. rescore the candidates exactly from a row-major copy (if any) and
//      return the best k.
// Scores are <q, x> + bias as in the brute-force driver: squared L2 runs as
// maximum inner product with bias -|x|^2/2 (docs/algorithms.md, section 4). The
// reduction's extra coordinate is not quantized: it enters the LUT16 kernel
// as a per-point bias, computed from the reconstructed point so the scan
// scores -|q - x~|^2/2 (annlib/quantized/placement.py, l2_point_term); reordering is exact.
#pragma once
#include <cstdint>

#include "../kernels/dense_scan.h"
#include "../kernels/lut16.h"
#include "dense_search.h"

namespace annlib {

// One leaf's slots: packed LUT16 codes (kernels/lut16.h), the datapoint (row)
// of each slot (-1: padding or a deleted point) and, for squared L2, the exact
// per-slot term of the L2 -> MIPS reduction, (|c|^2 - |x|^2) / 2.
struct LeafData {
  const uint8_t* codes = nullptr;  // [size / 32][PaddedBlocks(num_blocks)][16]
  const int32_t* ids = nullptr;    // [size]
  const float* bias = nullptr;     // [size] or nullptr (dot product)
  int64_t size = 0;                // slots, a multiple of 32
};

struct PartitionedView {
  int32_t dim = 0;                    // the data's dimension d
  // Tree: centroid panels (bias 0, or -|c|^2/2 for squared L2) score every
  // leaf. float32 panels score exactly; int8 panels (a quarter of the bytes
  // every query streams) screen the leaves, and the best are rescored from
  // float32 rows (stride row_stride), so leaf scores stay exact.
  DenseView centroids;
  const float* centroid_rows = nullptr;      // [num_leaves][row_stride] or nullptr
  const float* centroid_row_bias = nullptr;  // [num_leaves]
  const LeafData* leaves = nullptr;          // [num_leaves]
  // AH: codes of the residuals (num_blocks * dims_per_block == dim).
  int32_t num_blocks = 0;
  int32_t dims_per_block = 0;
  const float* lut_centers = nullptr;  // [num_blocks][dims_per_block][16]
  // Reorder copy; rows == nullptr means no reordering (AH scores are returned).
  DenseType reorder_type = DenseType::kFloat32;
  const void* rows = nullptr;
  int64_t row_stride = 0;
  const float* row_bias = nullptr;
  const float* row_scale = nullptr;
  const float* row_offset = nullptr;
  // SOAR: points may be stored twice, so candidates are deduplicated.
  bool spilled = false;
  int64_t num_points = 0;             // rows (slot ids are in [0, num_points))

  int32_t num_leaves() const { return static_cast<int32_t>(centroids.n); }
};

struct PartitionedParams {
  int32_t leaves;       // leaves searched per query, in [1, num_leaves]
  int32_t pre_reorder;  // AH candidates kept (>= k when reordering)
  int32_t k;            // results returned
  // Filter: bit r set when row r may be returned (nullptr = every row).
  const uint64_t* allowed = nullptr;
  // Leaves chosen by the caller (ChooseLeaves; a sharded index's coordinator
  // chooses them once for every shard): [nq][leaves] (leaf, exact centroid
  // score), best first; entries with leaf -1 are skipped. nullptr: chosen here.
  const Candidate* probes = nullptr;
  // Candidates mode (a shard's answer): instead of the top k, the k best
  // distinct candidates by approximate score, unordered, each with its
  // approximate score here [nq][k] and its reordered score in out_scores
  // (the approximate one without a reorder copy). pre_reorder must equal k.
  float* out_approx = nullptr;
};

// Per-stage time of one search call, summed over queries (nanoseconds).
struct StageTimes {
  double centroids = 0, lut = 0, scan = 0, reorder = 0, total = 0;
};

// queries [nq][dim] -> out_ids/out_scores [nq][k] (id -1, score -inf padding).
struct PartitionedKernels {
  const DenseKernels* dense;  // centroid scan and reorder
  Lut16ScanFn scan;
  Lut16BuildFn build;
  Lut16ScanMultiFn scan_multi;  // batches: a leaf scanned once for several queries
};

void PartitionedSearch(const PartitionedView& v, const PartitionedKernels& kernels,
                       const float* queries, int64_t nq, const PartitionedParams& p, int num_threads,
                       int64_t* out_ids, float* out_scores, StageTimes* times = nullptr);

// The `count` leaves a search scans for each query, as PartitionedSearch
// chooses them: out [nq][count] (leaf, exact centroid score), best first.
void ChooseLeaves(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries, int64_t nq,
                  int32_t count, int num_threads, Candidate* out);

// The tuner's rank table (annlib/tuning/ranks.py) in one pass over each
// query's leaves: for every grid[g] (rising), the position of each wanted row
// (wanted_rows [nq][m], -1: none) among the query's best `count` distinct AH
// candidates (BetterOrder) of its best grid[g] leaves, or `count` where it is
// not among them: out [num_grid][nq][m]. The same positions as a search of
// grid[g] leaves without reordering, for every g, at about the cost of one
// search of the largest.
void AhRanksOverGrid(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries, int64_t nq,
                     const int32_t* grid, int32_t num_grid, int32_t count, const int32_t* wanted_rows, int32_t m,
                     int num_threads, int32_t* out);

// Exact top k of each query over the given rows (the reorder copy rescored,
// no tree): the path for filters that leave few points, and the fallback for
// queries whose searched leaves held fewer than k allowed points.
// Outputs [nq][k] like PartitionedSearch. Needs v.rows.
void ExactRowSearch(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries, int64_t nq,
                    const int32_t* rows, int64_t num_rows, int32_t k, int num_threads, int64_t* out_ids,
                    float* out_scores);

}  // namespace annlib
