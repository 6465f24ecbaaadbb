#include "soar.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../util/parallel.h"

namespace annlib {
namespace {

// Points per task: their 2 x chunk score rows over the centers stay small
// (2 * 128 * num_centers floats) while the GEMM still amortises each panel.
constexpr int64_t kChunk = 128;

}  // namespace

void SoarAssign(const SoarArgs& a, const DenseKernels& kernels, int num_threads) {
  const DenseView& cv = a.center_panels;
  const int32_t dim = cv.dim;
  const int64_t num_centers = cv.n;
  if (a.n <= 0) return;
  if (!(a.lambda >= 0.0f) || !std::isfinite(a.lambda)) throw std::invalid_argument("lambda must be finite and >= 0");
  if (cv.type != DenseType::kFloat32) throw std::invalid_argument("SOAR needs float32 center panels");
  for (int64_t i = 0; i < a.n; ++i)
    if (a.primary[i] < 0 || a.primary[i] >= num_centers) throw std::invalid_argument("primary label out of range");

  std::vector<float> center_norm2(num_centers);
  for (int64_t c = 0; c < num_centers; ++c) {
    double s = 0.0;
    for (int32_t t = 0; t < dim; ++t) s += double{a.centers[c * dim + t]} * a.centers[c * dim + t];
    center_norm2[c] = static_cast<float>(s);
  }
  const int64_t stride = cv.num_panels() * kPanelWidth;
  const int64_t tasks = (a.n + kChunk - 1) / kChunk;
  ParallelFor(tasks, ResolveThreads(num_threads), [&](int64_t task) {
    const int64_t p0 = task * kChunk;
    const int64_t m = std::min(kChunk, a.n - p0);
    // Rows 0..m-1: the points; rows m..2m-1: their unit primary residuals.
    std::vector<float> rows(2 * m * dim);
    std::vector<float> along(m);  // a = <x, r^>
    std::copy(a.x + p0 * dim, a.x + (p0 + m) * dim, rows.begin());
    for (int64_t i = 0; i < m; ++i) {
      const float* x = a.x + (p0 + i) * dim;
      const float* c = a.centers + a.primary[p0 + i] * dim;
      float* r = rows.data() + (m + i) * dim;
      double norm2 = 0.0;
      for (int32_t t = 0; t < dim; ++t) {
        r[t] = x[t] - c[t];
        norm2 += double{r[t]} * r[t];
      }
      // A point on its center has no residual direction: loss = distance.
      const float inv = norm2 > 0.0 ? static_cast<float>(1.0 / std::sqrt(norm2)) : 0.0f;
      double dot = 0.0;
      for (int32_t t = 0; t < dim; ++t) {
        r[t] *= inv;
        dot += double{x[t]} * r[t];
      }
      along[i] = static_cast<float>(dot);
    }
    std::vector<float> scores(2 * m * stride);
    DenseScores(cv, kernels, rows.data(), 2 * m, scores.data(), stride, 1);
    for (int64_t i = 0; i < m; ++i) {
      const float* s1 = scores.data() + i * stride;
      const float* s2 = scores.data() + (m + i) * stride;
      float best = std::numeric_limits<float>::infinity();
      int64_t best_c = a.primary[p0 + i];
      for (int64_t c = 0; c < num_centers; ++c) {
        const float proj = along[i] - s2[c];
        const float loss = center_norm2[c] - 2.0f * s1[c] + a.lambda * proj * proj;
        if (loss < best) {
          best = loss;
          best_c = c;
        }
      }
      a.secondary[p0 + i] = static_cast<int32_t>(best_c);
    }
  });
}

}  // namespace annlib
