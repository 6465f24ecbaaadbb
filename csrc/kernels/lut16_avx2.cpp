// AVX2 LUT16 scan: two blocks per 256-bit shuffle.
#include <immintrin.h>

#include "lut16.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace annlib {
namespace {
#include "lut16-inl.h"

// Adds the 16-bit lanes of `even`/`odd` sums (per 128-bit lane: points 0,2,..
// and 1,3,.. of the half-group) across the two 128-bit lanes, re-interleaves
// them into natural order and adds them to totals[0..15] as int32.
inline void AddHalf(__m256i a, __m256i b, int32_t* totals) {
  const __m256i even = _mm256_sub_epi16(a, _mm256_slli_epi16(b, 8));
  const __m128i e = _mm_add_epi16(_mm256_castsi256_si128(even), _mm256_extracti128_si256(even, 1));
  const __m128i o = _mm_add_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
  const __m128i lo = _mm_unpacklo_epi16(e, o);  // points 0..7
  const __m128i hi = _mm_unpackhi_epi16(e, o);  // points 8..15
  __m256i t0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(totals));
  __m256i t1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(totals + 8));
  t0 = _mm256_add_epi32(t0, _mm256_cvtepu16_epi32(lo));
  t1 = _mm256_add_epi32(t1, _mm256_cvtepu16_epi32(hi));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(totals), t0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(totals + 8), t1);
}

// Approximate scores of the group's 32 points and the mask of those above
// the heap threshold. point_bias has a slot for every padding lane too.
inline uint32_t Score(const Lut16Args& a, int64_t group, const int32_t* totals, float* scores) {
  const __m256 inv_scale = _mm256_set1_ps(a.inv_scale);
  const __m256 base = _mm256_set1_ps(a.base);
  const __m256 threshold = _mm256_set1_ps(HeapThreshold(*a.state, a.k));
  uint32_t mask = 0;
  for (int v = 0; v < 4; ++v) {
    const __m256i t = _mm256_load_si256(reinterpret_cast<const __m256i*>(totals + 8 * v));
    __m256 s = _mm256_add_ps(_mm256_mul_ps(inv_scale, _mm256_cvtepi32_ps(t)), base);
    if (a.point_bias != nullptr) s = _mm256_add_ps(s, _mm256_loadu_ps(a.point_bias + group * kLut16Group + 8 * v));
    _mm256_storeu_ps(scores + 8 * v, s);
    mask |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(s, threshold, _CMP_GT_OQ))) << (8 * v);
  }
  return mask;
}

}  // namespace

void Lut16ScanAvx2(const Lut16Args& a) {
  const int64_t groups = (a.num_points + kLut16Group - 1) / kLut16Group;
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  alignas(32) int32_t totals[kLut16Group];
  float scores[kLut16Group];
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* codes = a.codes + g * a.num_blocks * 16;
    for (int i = 0; i < kLut16Group; ++i) totals[i] = 0;
    // 16-bit lanes hold at most 128 byte-sized terms per chunk of 256 blocks
    // (each 128-bit lane sees every other block), so they cannot overflow.
    for (int32_t b0 = 0; b0 < a.num_blocks; b0 += 256) {
      const int32_t b1 = a.num_blocks - b0 < 256 ? a.num_blocks : b0 + 256;
      __m256i lo_a = _mm256_setzero_si256(), lo_b = _mm256_setzero_si256();
      __m256i hi_a = _mm256_setzero_si256(), hi_b = _mm256_setzero_si256();
      for (int32_t b = b0; b < b1; b += 2) {
        const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + b * 16));
        const __m256i lut = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.lut + b * 16));
        const __m256i r_lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(c, nibble));
        const __m256i r_hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(c, 4), nibble));
        // As 16-bit lanes: a += even + 256 * odd byte, b += odd byte; the even
        // sums are recovered as a - (b << 8) without widening every step.
        lo_a = _mm256_add_epi16(lo_a, r_lo);
        lo_b = _mm256_add_epi16(lo_b, _mm256_srli_epi16(r_lo, 8));
        hi_a = _mm256_add_epi16(hi_a, r_hi);
        hi_b = _mm256_add_epi16(hi_b, _mm256_srli_epi16(r_hi, 8));
      }
      AddHalf(lo_a, lo_b, totals);
      AddHalf(hi_a, hi_b, totals + 16);
    }
    Lut16Select(a, g, scores, Score(a, g, totals, scores));
  }
}

}  // namespace annlib
