// AVX-512 (BW) LUT16 scan: four blocks per 512-bit shuffle.
#include <immintrin.h>

#include "lut16.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace annlib {
namespace {
#include "lut16-inl.h"

// As in the AVX2 unit, with four 128-bit lanes to fold.
inline void AddHalf(__m512i a, __m512i b, int32_t* totals) {
  const __m512i even = _mm512_sub_epi16(a, _mm512_slli_epi16(b, 8));
  const __m256i e2 = _mm256_add_epi16(_mm512_castsi512_si256(even), _mm512_extracti64x4_epi64(even, 1));
  const __m256i o2 = _mm256_add_epi16(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1));
  const __m128i e = _mm_add_epi16(_mm256_castsi256_si128(e2), _mm256_extracti128_si256(e2, 1));
  const __m128i o = _mm_add_epi16(_mm256_castsi256_si128(o2), _mm256_extracti128_si256(o2, 1));
  const __m256i both = _mm256_set_m128i(_mm_unpackhi_epi16(e, o), _mm_unpacklo_epi16(e, o));
  __m512i t = _mm512_loadu_si512(totals);
  _mm512_storeu_si512(totals, _mm512_add_epi32(t, _mm512_cvtepu16_epi32(both)));
}

// Approximate scores of the group's 32 points and the mask of those above
// the heap threshold. point_bias has a slot for every padding lane too.
inline uint32_t Score(const Lut16Args& a, int64_t group, const int32_t* totals, float* scores) {
  const __m512 inv_scale = _mm512_set1_ps(a.inv_scale);
  const __m512 base = _mm512_set1_ps(a.base);
  const __m512 threshold = _mm512_set1_ps(HeapThreshold(*a.state, a.k));
  uint32_t mask = 0;
  for (int v = 0; v < 2; ++v) {
    __m512 s = _mm512_add_ps(_mm512_mul_ps(inv_scale, _mm512_cvtepi32_ps(_mm512_load_si512(totals + 16 * v))), base);
    if (a.point_bias != nullptr) s = _mm512_add_ps(s, _mm512_loadu_ps(a.point_bias + group * kLut16Group + 16 * v));
    _mm512_storeu_ps(scores + 16 * v, s);
    mask |= static_cast<uint32_t>(_mm512_cmp_ps_mask(s, threshold, _CMP_GT_OQ)) << (16 * v);
  }
  return mask;
}

}  // namespace

void Lut16ScanAvx512(const Lut16Args& a) {
  const int64_t groups = (a.num_points + kLut16Group - 1) / kLut16Group;
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  alignas(64) int32_t totals[kLut16Group];
  float scores[kLut16Group];
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* codes = a.codes + g * a.num_blocks * 16;
    _mm512_store_si512(totals, _mm512_setzero_si512());
    _mm512_store_si512(totals + 16, _mm512_setzero_si512());
    // Each 128-bit lane sees every fourth block: at most 64 byte terms per
    // 16-bit lane in a chunk of 256 blocks.
    for (int32_t b0 = 0; b0 < a.num_blocks; b0 += 256) {
      const int32_t b1 = a.num_blocks - b0 < 256 ? a.num_blocks : b0 + 256;
      __m512i lo_a = _mm512_setzero_si512(), lo_b = _mm512_setzero_si512();
      __m512i hi_a = _mm512_setzero_si512(), hi_b = _mm512_setzero_si512();
      for (int32_t b = b0; b < b1; b += 4) {
        const __m512i c = _mm512_loadu_si512(codes + b * 16);
        const __m512i lut = _mm512_loadu_si512(a.lut + b * 16);
        const __m512i r_lo = _mm512_shuffle_epi8(lut, _mm512_and_si512(c, nibble));
        const __m512i r_hi = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(c, 4), nibble));
        lo_a = _mm512_add_epi16(lo_a, r_lo);
        lo_b = _mm512_add_epi16(lo_b, _mm512_srli_epi16(r_lo, 8));
        hi_a = _mm512_add_epi16(hi_a, r_hi);
        hi_b = _mm512_add_epi16(hi_b, _mm512_srli_epi16(r_hi, 8));
      }
      AddHalf(lo_a, lo_b, totals);
      AddHalf(hi_a, hi_b, totals + 16);
    }
    Lut16Select(a, g, scores, Score(a, g, totals, scores));
  }
}

}  // namespace annlib
