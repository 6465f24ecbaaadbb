#include "reconstruction.h"

#include <algorithm>
#include <stdexcept>

#include "../util/parallel.h"

namespace annlib {

void ReconstructedNorm2(const ReconstructedNormArgs& a, int num_threads) {
  for (int64_t i = 0; i < a.n; ++i)
    if (a.leaves[i] < 0 || a.leaves[i] >= a.num_centers) throw std::invalid_argument("leaf out of range");
  const int64_t num_codes = a.n * a.num_blocks;
  for (int64_t i = 0; i < num_codes; ++i)
    if (a.codes[i] >= 16) throw std::invalid_argument("AH codes must be below 16");
  const int32_t dpb = a.dims_per_block;
  const int64_t dim = int64_t{a.num_blocks} * dpb;
  constexpr int64_t kChunk = 4096;
  ParallelFor((a.n + kChunk - 1) / kChunk, ResolveThreads(num_threads), [&](int64_t task) {
    const int64_t end = std::min(a.n, (task + 1) * kChunk);
    for (int64_t i = task * kChunk; i < end; ++i) {
      const float* center = a.centers + a.leaves[i] * dim;
      const uint8_t* code = a.codes + i * a.num_blocks;
      double sum = 0.0;
      for (int32_t b = 0; b < a.num_blocks; ++b) {
        const float* word = a.codebooks + (int64_t{b} * 16 + code[b]) * dpb;
        for (int32_t j = 0; j < dpb; ++j) {
          const double v = center[int64_t{b} * dpb + j] + word[j];  // the sum in float32, as x~ is
          sum += v * v;
        }
      }
      a.out[i] = sum;
    }
  });
}

}  // namespace annlib
