// Search driver of the quantized partitioning index (the ScaNN pipeline):
//   1. score the query against every leaf centroid (dense kernels in raw
//      mode, on int8 panels), keep the best leaves, rescore those exactly;
//   2. build the query's LUT16 table from the AH codebooks;
//   3. scan the codes of those leaves, best leaf first, keeping the best
//      `pre_reorder` candidates (approximate score = leaf score + LUT sum) in
//      a candidate buffer (kernels/candidates.h);
//   4. with SOAR (a point may sit in two leaves), drop the worse copy of every
//      duplicate and keep the best `pre_reorder` of what is left; the buffer
//      holds overretrieve_factor times more entries to make up for them;
//   5. rescore the candidates exactly from a row-major copy (if any) and
//      return the best k.
// Scores are <q, x> + bias as in the brute-force driver: squared L2 runs as
// maximum inner product with bias -|x|^2/2 (ALGORITHMS.md section 4). The
// reduction's extra coordinate is not quantized: its exact value enters the
// LUT16 kernel as a per-point bias, so only <q, residual> is approximated.
#pragma once
#include <cstdint>

#include "../kernels/dense_scan.h"
#include "../kernels/lut16.h"
#include "dense_search.h"

namespace annlib {

struct PartitionedView {
  int32_t dim = 0;                    // the data's dimension d
  // Tree: centroid panels (bias 0, or -|c|^2/2 for squared L2) score every
  // leaf. float32 panels score exactly; int8 panels (a quarter of the bytes
  // every query streams) screen the leaves, and the best are rescored from
  // float32 rows (stride row_stride), so leaf scores stay exact.
  DenseView centroids;
  const float* centroid_rows = nullptr;      // [num_leaves][row_stride] or nullptr
  const float* centroid_row_bias = nullptr;  // [num_leaves]
  const int64_t* leaf_starts = nullptr;  // [num_leaves + 1] slot offsets, multiples of 32
  // AH: codes of the residuals (num_blocks * dims_per_block == dim).
  int32_t num_blocks = 0;
  int32_t dims_per_block = 0;
  const float* lut_centers = nullptr;  // [num_blocks][dims_per_block][16]
  const uint8_t* codes = nullptr;      // packed (kernels/lut16.h), leaf after leaf
  const int32_t* slot_ids = nullptr;   // [total slots] datapoint id, -1 for padding
  // Exact per-point term of the L2 -> MIPS reduction, (|c|^2 - |x|^2) / 2,
  // or nullptr (dot product).
  const float* slot_bias = nullptr;    // [total slots]
  // Reorder copy; rows == nullptr means no reordering (AH scores are returned).
  DenseType reorder_type = DenseType::kFloat32;
  const void* rows = nullptr;
  int64_t row_stride = 0;
  const float* row_bias = nullptr;
  const float* row_scale = nullptr;
  const float* row_offset = nullptr;
  // SOAR: points may be stored twice, so candidates are deduplicated.
  bool spilled = false;
  int64_t num_points = 0;             // datapoints (ids are in [0, num_points))
  float overretrieve_factor = 1.0f;   // candidates kept = factor * candidates wanted

  int32_t num_leaves() const { return static_cast<int32_t>(centroids.n); }
};

struct PartitionedParams {
  int32_t leaves;       // leaves searched per query, in [1, num_leaves]
  int32_t pre_reorder;  // AH candidates kept (>= k when reordering)
  int32_t k;            // results returned
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

}  // namespace annlib
