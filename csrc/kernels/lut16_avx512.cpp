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
#include "lut16_select_avx512-inl.h"

struct Ops {
  static constexpr int kBlocks = 4;
  static constexpr int kMaxQueries = 4;  // 16 accumulators + 6 temporaries of 32 zmm registers
  using V = __m512i;
  static V zero() { return _mm512_setzero_si512(); }
  static V load(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static V low_nibbles(V c) { return _mm512_and_si512(c, _mm512_set1_epi8(0x0F)); }
  static V high_nibbles(V c) { return _mm512_and_si512(_mm512_srli_epi16(c, 4), _mm512_set1_epi8(0x0F)); }
  static V shuffle(V table, V index) { return _mm512_shuffle_epi8(table, index); }
  static V add16(V acc, V x) { return _mm512_add_epi16(acc, x); }
  static V add_high8(V acc, V x) { return _mm512_add_epi16(acc, _mm512_srli_epi16(x, 8)); }

  // As in the AVX2 unit, with four 128-bit lanes to fold.
  static void add_half(V a, V b, bool first, int32_t* totals) {
    const __m512i even = _mm512_sub_epi16(a, _mm512_slli_epi16(b, 8));
    const __m256i e2 = _mm256_add_epi16(_mm512_castsi512_si256(even), _mm512_extracti64x4_epi64(even, 1));
    const __m256i o2 = _mm256_add_epi16(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1));
    const __m128i e = _mm_add_epi16(_mm256_castsi256_si128(e2), _mm256_extracti128_si256(e2, 1));
    const __m128i o = _mm_add_epi16(_mm256_castsi256_si128(o2), _mm256_extracti128_si256(o2, 1));
    const __m256i both = _mm256_set_m128i(_mm_unpackhi_epi16(e, o), _mm_unpacklo_epi16(e, o));
    const __m512i sums = _mm512_cvtepu16_epi32(both);
    if (first) {  // (no read of the not yet written totals)
      _mm512_storeu_si512(totals, sums);
    } else {
      _mm512_storeu_si512(totals, _mm512_add_epi32(_mm512_loadu_si512(totals), sums));
    }
  }

  static uint32_t score(const Lut16Args& a, int64_t group, const int32_t* totals, float* scores) {
    return Lut16ScoreAvx512(a, group, totals, scores);
  }
  static void select(const Lut16Args& a, int64_t group, const float* scores, uint32_t mask) {
    Lut16SelectAvx512(a, group, scores, mask);
  }
};

#include "lut16_scan-inl.h"

}  // namespace

void Lut16ScanAvx512(const Lut16Args& a) { Lut16ScanBody(a); }

void Lut16ScanMultiAvx512(const Lut16Args* queries, int count) { Lut16ScanMultiBody(queries, count); }

void Lut16BuildAvx512(const Lut16BuildArgs& a) {
  float* lut = a.scratch;
  float* mins = a.scratch + a.num_blocks * 16;
  float widest = 0.0f;
  double total_min = 0.0;
  for (int32_t b = 0; b < a.num_blocks; ++b) {
    __m512 acc = _mm512_setzero_ps();
    for (int32_t t = 0; t < a.dims_per_block; ++t)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(a.query[b * a.dims_per_block + t]),
                            _mm512_loadu_ps(a.centers + (int64_t{b} * a.dims_per_block + t) * 16), acc);
    _mm512_storeu_ps(lut + b * 16, acc);
    const float lo = _mm512_reduce_min_ps(acc), hi = _mm512_reduce_max_ps(acc);
    mins[b] = lo;
    total_min += lo;
    widest = hi - lo > widest ? hi - lo : widest;
  }
  const float scale = Lut16Scale(widest);
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int32_t b = 0; b < a.num_blocks; ++b) {
    const __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(lut + b * 16), _mm512_set1_ps(mins[b])), vscale);
    __m512i q = _mm512_cvtps_epi32(v);  // round to nearest even, like nearbyint
    q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(255));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a.table + b * 16), _mm512_cvtepi32_epi8(q));
  }
  Lut16FinishBuild(a, scale, total_min);
}

}  // namespace annlib
