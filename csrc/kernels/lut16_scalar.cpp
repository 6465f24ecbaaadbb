// Scalar LUT16 scan: the reference for the SIMD versions.
#include "lut16.h"

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

}  // namespace annlib
