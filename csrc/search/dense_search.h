// Brute-force (dense) search over a packed database: the TPU-KNN style scan.
// Packing turns row-major float32 vectors into the panel layouts described in
// kernels/dense_scan.h; DenseSearch scores query blocks against panel chunks
// with the chosen ISA kernels and selects the top k per query, exactly or
// through L strided bins.
#pragma once
#include <cstdint>

#include "../kernels/dense_scan.h"

namespace annlib {

// Non-owning view of a packed database. `scale` and `sums` are set for int8.
struct DenseView {
  DenseType type = DenseType::kFloat32;
  int64_t n = 0;
  int32_t dim = 0;
  const void* panels = nullptr;
  const float* bias = nullptr;
  const float* scale = nullptr;
  const int32_t* sums = nullptr;
  int64_t num_panels() const { return (n + kPanelWidth - 1) / kPanelWidth; }
};

// Bytes of one panel for a type and dimension.
int64_t PanelBytes(DenseType type, int32_t dim);

// Fills the outputs (sized by the caller: panels = num_panels * PanelBytes,
// bias/scale/sums = num_panels * 32) from x [n][dim]. `squared_l2` selects the
// -|x|^2/2 bias (squared L2 as maximum inner product); padding gets -inf.
void PackDense(const float* x, int64_t n, int32_t dim, DenseType type, bool squared_l2,
               void* panels, float* bias, float* scale, int32_t* sums, int num_threads);

// Top-k of <q, x> + bias for each query row. num_bins = 0: exact; otherwise the
// best of each of num_bins strided bins survives and the top k of those are
// returned. Outputs [nq][k]; missing entries are id -1, score -inf.
void DenseSearch(const DenseView& db, const DenseKernels& kernels, const float* queries,
                 int64_t num_queries, int32_t k, int32_t num_bins, int num_threads,
                 int64_t* out_ids, float* out_scores);

}  // namespace annlib
