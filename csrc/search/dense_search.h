// Brute-force (dense) search over a packed database: the TPU-KNN style scan.
// Packing turns row-major float32 vectors into the panel layouts described in
// kernels/dense_scan.h; DenseSearch scores query blocks against panel chunks
// with the chosen ISA kernels and selects the top k per query, exactly or
// through L strided bins.
#pragma once
#include <cstdint>
#include <vector>

#include "../kernels/dense_scan.h"
#include "../util/aligned_memory.h"

namespace annlib {

// Non-owning view of a packed database. The int8 arrays are set for int8 only.
struct DenseView {
  DenseType type = DenseType::kFloat32;
  int64_t n = 0;
  int32_t dim = 0;
  const void* panels = nullptr;
  const float* bias = nullptr;
  const float* scale = nullptr;
  const float* offset = nullptr;
  const int32_t* sums = nullptr;
  const float* scaled_sums = nullptr;
  // float32, optional: each point's Euclidean norm, which bounds a screened
  // scan's error so that only the bin winners near the top k are rescored
  // (without it every winner is).
  const float* norms = nullptr;
  // float32, optional: each point's |x - bf16(x)| (rounded up), which bounds a
  // bf16-rounding screen's error tighter than its relative error does (zero
  // for data bf16 holds exactly, such as integers up to 256).
  const float* bf16_residuals = nullptr;
  // float32, optional: an int8 copy of the same points (MakeInt8Copy)
  // that binned searches scan to choose each bin's winner where the kernels
  // allow it (DenseKernels::int8_screen); the winners are rescored exactly.
  const DenseView* int8_copy = nullptr;
  // int8 copies: each point's |x - (scale * code + offset)| (rounded up), which
  // with the query's own rounding bounds the copy's error (zero for integer
  // data with a range of at most 254, such as SIFT).
  const float* int8_residuals = nullptr;
  int64_t num_panels() const { return (n + kPanelWidth - 1) / kPanelWidth; }
};

// Bytes of one panel for a type and dimension.
int64_t PanelBytes(DenseType type, int32_t dim);

// Dimension 0 of point j in float32 panels; dimension t is kPanelWidth * t further.
inline const float* PanelPoint(const DenseView& db, int64_t j) {
  return static_cast<const float*>(db.panels) + (j / kPanelWidth) * int64_t{db.dim} * kPanelWidth + j % kPanelWidth;
}

// Per-point arrays written by PackDense, each num_panels * 32 long.
struct DensePointArrays {
  float* bias = nullptr;
  float* scale = nullptr;        // int8 only
  float* offset = nullptr;       // int8 only
  int32_t* sums = nullptr;       // int8 only
  float* scaled_sums = nullptr;  // int8 only
  float* norms = nullptr;        // float32, optional: Euclidean norms (0 for padding)
};

// Fills panels (num_panels * PanelBytes bytes) and the per-point arrays from
// x [n][dim]. `squared_l2` selects the -|x|^2/2 bias (squared L2 as maximum
// inner product); padding points get bias -inf.
void PackDense(const float* x, int64_t n, int32_t dim, DenseType type, bool squared_l2,
               void* panels, const DensePointArrays& out, int num_threads);

// Fills residuals [num_panels * 32] with |x - bf16(x)| of each point of the
// float32 panels (rounded up; 0 for padding), for DenseView::bf16_residuals.
void Bf16Residuals(const DenseView& db, float* residuals, int num_threads);

// An int8 copy of float32 panels with its own storage, for DenseView::int8_copy:
// each point quantised as PackDense quantises int8 data, with its residual
// |x - (scale * code + offset)|; `view` (type kInt8, the float32 view's bias)
// reads the arrays here.
struct Int8Copy {
  ScanVector<int8_t> panels;
  std::vector<float> scale, offset, scaled_sums, residuals;
  std::vector<int32_t> sums;
  DenseView view;
};

// Makes *copy from db's float32 panels. Throws std::bad_alloc when out of memory.
void MakeInt8Copy(const DenseView& db, int num_threads, Int8Copy* copy);

// Row-major copies for exact rescoring (layout in kernels/dense_scan.h).
int64_t RowStride(int32_t dim);
int64_t RowElementBytes(DenseType type);
// Fills rows (n * RowStride(dim) elements of the type) and bias [n]
// (-|x|^2/2 when squared_l2, else 0); for int8 also scale and offset [n].
void PackRows(const float* x, int64_t n, int32_t dim, DenseType type, bool squared_l2, void* rows,
              float* bias, float* scale, float* offset, int num_threads);

// How far a screened score may be from the float32 scan's score of the same
// point (an upper bound, doubled for margin), for one query:
//  - an int8 copy (x' = scale * code + offset, the query q' rounded the same way
//    per query): |q| r_j + |q - q'| (|x_j| + r_j), r_j = |x_j - x'_j|, plus the
//    float32 arithmetic that turns the integer dot product into a score (a few
//    roundings of terms up to |scale * code| |q'| and the offsets' products);
//  - bf16-rounding screens with residuals: |q| r_j + |q - bf16(q)| (|x_j| + r_j),
//    r_j = |x_j - bf16(x_j)| (zero for data bf16 holds exactly);
//  - otherwise screen_error |q| |x_j| (bf16x3 on AMX: about 3 * 2^-16 of
//    sum |q_i x_i| <= |q| |x|; one bf16 product: 2^-7);
// plus float32 sums, at most 2^-24 per addition of terms up to |q| |x| + |bias|.
// db.norms must be set (and db.int8_copy for int8_screened).
class ScreenErrorBound {
 public:
  ScreenErrorBound(const DenseView& db, const DenseKernels& kernels, bool int8_screened, const float* query);
  double operator()(int64_t j) const;  // point j's margin

 private:
  const DenseView& db_;
  const DenseKernels& kernels_;
  const bool int8_, bf16_residuals_;
  const double sqrt_dim_, sums_;
  double qnorm_ = 0.0, qres_ = 0.0, qcodes_ = 0.0, query_mid_ = 0.0;
};

// Top-k of <q, x> + bias for each query row. num_bins = 0: exact; otherwise the
// best of each of num_bins strided bins survives and the top k of those are
// returned. Outputs [nq][k]; missing entries are id -1, score -inf.
// allowed: optional filter, bit j set when point j may be returned (words
// covering num_panels * 32 points); k results come back whenever k are allowed.
void DenseSearch(const DenseView& db, const DenseKernels& kernels, const float* queries,
                 int64_t num_queries, int32_t k, int32_t num_bins, int num_threads,
                 int64_t* out_ids, float* out_scores, const uint64_t* allowed = nullptr);

// Every score <q, x> + bias, no selection: out[i * out_stride + j] for query i
// and point j < num_panels * 32 (padding points included; out_stride must be
// at least that). A GEMM with our kernels, for callers that need the whole
// score matrix (SOAR's spill assignment).
void DenseScores(const DenseView& db, const DenseKernels& kernels, const float* queries, int64_t num_queries,
                 float* out, int64_t out_stride, int num_threads);

}  // namespace annlib
