#include "codebook_update.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <vector>

#include "../util/parallel.h"

namespace annlib {

void BlockCenterSums(const BlockCenterSumsArgs& a, int num_threads) {
  constexpr int kCenters = 16;
  const int32_t nb = a.num_blocks, dpb = a.dims_per_block;
  const int64_t dim = int64_t{nb} * dpb, cells = int64_t{nb} * kCenters;
  // Chunks of a size fixed by n alone (at most 64 of them), so the order of the
  // double additions, and so the result, is the same on any number of threads.
  const int64_t chunk = std::max<int64_t>(2048, (a.n + 63) / 64);
  const int64_t num_chunks = (a.n + chunk - 1) / chunk;
  std::vector<double> sums(static_cast<size_t>(num_chunks * cells * dpb), 0.0);
  std::vector<int64_t> counts(static_cast<size_t>(num_chunks * cells), 0);
  std::atomic<bool> bad_code{false};
  ParallelFor(num_chunks, num_threads, [&](int64_t c) {
    double* s = sums.data() + c * cells * dpb;
    int64_t* k = counts.data() + c * cells;
    const int64_t end = std::min(a.n, (c + 1) * chunk);
    for (int64_t i = c * chunk; i < end; ++i) {
      const float* xi = a.x + i * dim;
      const uint8_t* code = a.codes + i * nb;
      for (int32_t b = 0; b < nb; ++b) {
        const int32_t j = code[b];
        if (j >= kCenters) {
          bad_code = true;
          return;
        }
        const int64_t cell = int64_t{b} * kCenters + j;
        ++k[cell];
        for (int32_t t = 0; t < dpb; ++t) s[cell * dpb + t] += xi[int64_t{b} * dpb + t];
      }
    }
  });
  if (bad_code) throw std::invalid_argument("codes must be below 16");
  std::fill(a.sums, a.sums + cells * dpb, 0.0);
  std::fill(a.counts, a.counts + cells, int64_t{0});
  for (int64_t c = 0; c < num_chunks; ++c) {
    const double* s = sums.data() + c * cells * dpb;
    const int64_t* k = counts.data() + c * cells;
    for (int64_t e = 0; e < cells * dpb; ++e) a.sums[e] += s[e];
    for (int64_t e = 0; e < cells; ++e) a.counts[e] += k[e];
  }
}

void CenterSums(const CenterSumsArgs& a, int num_threads) {
  const int64_t num_centers = a.num_centers, dim = a.dim;
  for (int64_t i = 0; i < a.n; ++i)
    if (a.labels[i] < 0 || a.labels[i] >= num_centers) throw std::invalid_argument("label out of range");
  // The rows of each center, in row order (a counting sort).
  std::vector<int64_t> start(static_cast<size_t>(num_centers + 1), 0);
  for (int64_t i = 0; i < a.n; ++i) ++start[a.labels[i] + 1];
  for (int64_t c = 0; c < num_centers; ++c) start[c + 1] += start[c];
  std::vector<int64_t> rows(static_cast<size_t>(a.n));
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < a.n; ++i) rows[next[a.labels[i]]++] = i;
  }
  constexpr int64_t kCentersPerTask = 8;
  ParallelFor((num_centers + kCentersPerTask - 1) / kCentersPerTask, num_threads, [&](int64_t task) {
    const int64_t end = std::min(num_centers, (task + 1) * kCentersPerTask);
    for (int64_t c = task * kCentersPerTask; c < end; ++c) {
      float* sum = a.sums + c * dim;
      std::fill(sum, sum + dim, 0.0f);
      for (int64_t r = start[c]; r < start[c + 1]; ++r) {
        const float* xi = a.x + rows[r] * dim;
        for (int64_t t = 0; t < dim; ++t) sum[t] += xi[t];
      }
      a.counts[c] = start[c + 1] - start[c];
    }
  });
}

}  // namespace annlib
