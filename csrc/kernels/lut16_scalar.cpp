// Scalar LUT16 scan: the reference for the SIMD versions.
#include "lut16.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace annlib {
namespace {
#include "lut16-inl.h"
}  // namespace

void Lut16ScanScalar(const Lut16Args& a) {
  const int64_t groups = (a.num_points + kLut16Group - 1) / kLut16Group;
  int32_t totals[kLut16Group];
  float scores[kLut16Group];
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* codes = a.codes + g * a.num_blocks * 16;
    for (int i = 0; i < kLut16Group; ++i) totals[i] = 0;
    for (int32_t b = 0; b < a.num_blocks; ++b) {
      const uint8_t* row = codes + b * 16;
      const uint8_t* lut = a.lut + b * 16;
      for (int i = 0; i < 16; ++i) {
        totals[i] += lut[row[i] & 0x0F];
        totals[i + 16] += lut[row[i] >> 4];
      }
    }
    Lut16Select(a, g, scores, Lut16ScoreScalar(a, g, totals, scores));
  }
}

// The reference: one scan per query.
void Lut16ScanMultiScalar(const Lut16Args* queries, int count) {
  for (int j = 0; j < count; ++j) Lut16ScanScalar(queries[j]);
}

void Lut16BuildScalar(const Lut16BuildArgs& a) {
  float* lut = a.scratch;
  float* mins = a.scratch + a.num_blocks * 16;
  float widest = 0.0f;
  double total_min = 0.0;
  for (int32_t b = 0; b < a.num_blocks; ++b) {
    float* row = lut + b * 16;
    for (int j = 0; j < 16; ++j) row[j] = 0.0f;
    for (int32_t t = 0; t < a.dims_per_block; ++t) {
      const float q = a.query[b * a.dims_per_block + t];
      const float* c = a.centers + (int64_t{b} * a.dims_per_block + t) * 16;
      for (int j = 0; j < 16; ++j) row[j] += q * c[j];
    }
    float lo = row[0], hi = row[0];
    for (int j = 1; j < 16; ++j) {
      lo = std::min(lo, row[j]);
      hi = std::max(hi, row[j]);
    }
    mins[b] = lo;
    total_min += lo;
    widest = std::max(widest, hi - lo);
  }
  const float scale = Lut16Scale(widest);
  for (int32_t b = 0; b < a.num_blocks; ++b)
    for (int j = 0; j < 16; ++j) {
      const float v = std::nearbyint((lut[b * 16 + j] - mins[b]) * scale);
      a.table[b * 16 + j] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, v)));
    }
  Lut16FinishBuild(a, scale, total_min);
}

}  // namespace annlib
