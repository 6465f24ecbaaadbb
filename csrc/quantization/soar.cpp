#include "soar.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../util/parallel.h"

namespace annlib {
namespace {

// Points per task: their score rows over the centers stay small (128 *
// num_centers floats) while the GEMM still amortises each panel.
constexpr int64_t kChunk = 128;
// The nearest centers scored in full first: the best of them bounds the rest.
constexpr int32_t kFirst = 8;

}  // namespace

// loss(c) = |c|^2 - 2 s1 + lambda (a - s2)^2 is at least e(c) = |c|^2 - 2 s1 (the
// squared distance less |x|^2; in float32 too, whose rounding is monotonic), so a
// center whose e(c) exceeds a loss already found can neither win nor tie. One GEMM
// of the points over the centers, packed for squared L2 (bias -|c|^2/2), gives
// every e(c) as -2 times the raw score: the very scores an exact float32 search of
// the centers ranks, so the smallest e(c), ties to the smaller center, is the leaf
// that search assigns. s2 = <r^, c> is computed (by the rescoring kernel, over a
// zero-padded copy of the centers) for the kFirst nearest centers, then only for
// the others whose e(c) is within the best loss of those: on photo-SIFT (2,600
// k-means leaves, lambda 1.5) about 100 centers per point. The two scans over a
// point's e(c) are the ISA's (kernels/row_select-inl.h). Scoring every center in
// full (one GEMM of the stacked [x; r^] rows, twice this one) took 1.6 s for 200k
// of its points, this 1.14 s, with the same choices. Equal losses go to the
// smaller center, whatever the order they are found in (as the full scan in
// center order did).
void SoarAssign(const SoarArgs& a, const DenseKernels& kernels, int num_threads) {
  const DenseView& cv = a.center_panels;
  const int32_t dim = cv.dim;
  const int64_t num_centers = cv.n;
  if (a.n <= 0) return;
  if (!(a.lambda >= 0.0f) || !std::isfinite(a.lambda)) throw std::invalid_argument("lambda must be finite and >= 0");
  if (cv.type != DenseType::kFloat32) throw std::invalid_argument("SOAR needs float32 center panels");
  if (a.primary != nullptr) {
    for (int64_t i = 0; i < a.n; ++i)
      if (a.primary[i] < 0 || a.primary[i] >= num_centers) throw std::invalid_argument("primary label out of range");
  } else if (a.nearest == nullptr) {
    throw std::invalid_argument("SOAR needs the primary centers or somewhere to write the nearest");
  }

  // The centers as the rescoring kernel reads rows (zero-padded, bias 0).
  const int64_t row_stride = RowStride(dim);
  std::vector<float> center_rows(num_centers * row_stride), zero_bias(num_centers);
  PackRows(a.centers, num_centers, dim, DenseType::kFloat32, false, center_rows.data(), zero_bias.data(), nullptr,
           nullptr, ResolveThreads(num_threads));
  if (num_centers > std::numeric_limits<int32_t>::max()) throw std::invalid_argument("too many centers");
  const int32_t centers32 = static_cast<int32_t>(num_centers);
  const int64_t stride = cv.num_panels() * kPanelWidth;
  const int64_t tasks = (a.n + kChunk - 1) / kChunk;
  ParallelFor(tasks, ResolveThreads(num_threads), [&](int64_t task) {
    const int64_t p0 = task * kChunk;
    const int64_t m = std::min(kChunk, a.n - p0);
    std::vector<float> scores(m * stride);
    DenseScores(cv, kernels, a.x + p0 * dim, m, scores.data(), stride, 1);
    std::vector<float> r_hat(row_stride, 0.0f), s2(num_centers), e(num_centers);
    int32_t first[kFirst];
    std::vector<int32_t> ids(num_centers);
    RescoreArgs r{};
    r.type = DenseType::kFloat32;
    r.rows = center_rows.data();
    r.stride = row_stride;
    r.bias = zero_bias.data();
    r.query = r_hat.data();
    r.out = s2.data();
    for (int64_t i = 0; i < m; ++i) {
      const int64_t point = p0 + i;
      const float* x = a.x + point * dim;
      // e(c) of every center, exact in the scaling by -2; the kFirst nearest by e.
      const float* raw = scores.data() + i * stride;
      float* e_of = e.data();
      for (int64_t c = 0; c < num_centers; ++c) e_of[c] = -2.0f * raw[c];
      const int32_t have = kernels.row_select.smallest(e_of, centers32, kFirst, first);
      // The nearest comes first, ties in index order.
      const int32_t p = a.primary != nullptr ? static_cast<int32_t>(a.primary[point]) : first[0];
      if (a.primary == nullptr) a.nearest[point] = p;
      const float* primary = a.centers + int64_t{p} * dim;
      double norm2 = 0.0;
      for (int32_t t = 0; t < dim; ++t) {
        r_hat[t] = x[t] - primary[t];
        norm2 += double{r_hat[t]} * r_hat[t];
      }
      // A point on its center has no residual direction: loss = distance.
      const float inv = norm2 > 0.0 ? static_cast<float>(1.0 / std::sqrt(norm2)) : 0.0f;
      double dot = 0.0;
      for (int32_t t = 0; t < dim; ++t) {
        r_hat[t] *= inv;
        dot += double{x[t]} * r_hat[t];
      }
      const float along = static_cast<float>(dot);  // a = <x, r^>

      float best = std::numeric_limits<float>::infinity();
      int64_t best_c = p;
      // The full loss of the given centers (s2 by the rescoring kernel).
      auto consider = [&](const int32_t* which, int32_t count) {
        r.ids = which;
        r.count = count;
        kernels.rescore(r);
        for (int32_t j = 0; j < count; ++j) {
          const int32_t c = which[j];
          const float proj = along - s2[j];
          const float loss = e[c] + a.lambda * proj * proj;
          if (loss < best || (loss == best && c < best_c)) {
            best = loss;
            best_c = c;
          }
        }
      };
      // The kFirst nearest centers scored in full; then the others within the best
      // loss (the ISA's row scans).
      consider(first, have);
      // (The run's own centers come again: scoring one twice changes nothing.)
      consider(ids.data(), kernels.row_select.at_most(e_of, centers32, best, ids.data()));
      a.secondary[point] = static_cast<int32_t>(best_c);
    }
  });
}

}  // namespace annlib
