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

struct Ops {
  static constexpr int kBlocks = 2;
  static constexpr int kMaxQueries = 2;  // 8 accumulators + 6 temporaries of 16 ymm registers
  using V = __m256i;
  static V zero() { return _mm256_setzero_si256(); }
  static V load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static V low_nibbles(V c) { return _mm256_and_si256(c, _mm256_set1_epi8(0x0F)); }
  static V high_nibbles(V c) { return _mm256_and_si256(_mm256_srli_epi16(c, 4), _mm256_set1_epi8(0x0F)); }
  static V shuffle(V table, V index) { return _mm256_shuffle_epi8(table, index); }
  static V add16(V acc, V x) { return _mm256_add_epi16(acc, x); }
  static V add_high8(V acc, V x) { return _mm256_add_epi16(acc, _mm256_srli_epi16(x, 8)); }

  // Per 128-bit lane, 16-bit lane m of `a - (b << 8)` sums point 2m and of `b`
  // point 2m + 1; fold the two lanes, re-interleave into natural order, widen.
  static void add_half(V a, V b, bool first, int32_t* totals) {
    const __m256i even = _mm256_sub_epi16(a, _mm256_slli_epi16(b, 8));
    const __m128i e = _mm_add_epi16(_mm256_castsi256_si128(even), _mm256_extracti128_si256(even, 1));
    const __m128i o = _mm_add_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    __m256i* t = reinterpret_cast<__m256i*>(totals);
    const __m256i lo = _mm256_cvtepu16_epi32(_mm_unpacklo_epi16(e, o));
    const __m256i hi = _mm256_cvtepu16_epi32(_mm_unpackhi_epi16(e, o));
    if (first) {  // (no read of the not yet written totals)
      _mm256_storeu_si256(t, lo);
      _mm256_storeu_si256(t + 1, hi);
    } else {
      _mm256_storeu_si256(t, _mm256_add_epi32(_mm256_loadu_si256(t), lo));
      _mm256_storeu_si256(t + 1, _mm256_add_epi32(_mm256_loadu_si256(t + 1), hi));
    }
  }

  // Approximate scores of the group's 32 points and the mask of those at or above
  // the candidate threshold. point_bias has a slot for every padding lane too.
  static uint32_t score(const Lut16Args& a, int64_t group, const int32_t* totals, float* scores) {
    const __m256 inv_scale = _mm256_set1_ps(a.inv_scale);
    const __m256 base = _mm256_set1_ps(a.base);
    const __m256 threshold = _mm256_set1_ps(a.candidates->threshold);
    uint32_t mask = 0;
    for (int v = 0; v < 4; ++v) {
      const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(totals + 8 * v));
      __m256 s = _mm256_add_ps(_mm256_mul_ps(inv_scale, _mm256_cvtepi32_ps(t)), base);
      if (a.point_bias != nullptr) s = _mm256_add_ps(s, _mm256_loadu_ps(a.point_bias + group * kLut16Group + 8 * v));
      _mm256_storeu_ps(scores + 8 * v, s);
      mask |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(s, threshold, _CMP_GE_OQ))) << (8 * v);
    }
    return mask;
  }
  static void select(const Lut16Args& a, int64_t group, const float* scores, uint32_t mask) {
    Lut16Select(a, group, scores, mask);
  }
};

#include "lut16_scan-inl.h"

}  // namespace

void Lut16ScanAvx2(const Lut16Args& a) { Lut16ScanBody(a); }

void Lut16ScanMultiAvx2(const Lut16Args* queries, int count) { Lut16ScanMultiBody(queries, count); }

namespace {
float ReduceMin(__m256 v) {
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_min_ss(m, _mm_movehdup_ps(m)));
}
float ReduceMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
}  // namespace

void Lut16BuildAvx2(const Lut16BuildArgs& a) {
  float* lut = a.scratch;
  float* mins = a.scratch + a.num_blocks * 16;
  float widest = 0.0f;
  double total_min = 0.0;
  for (int32_t b = 0; b < a.num_blocks; ++b) {
    __m256 lo_acc = _mm256_setzero_ps(), hi_acc = _mm256_setzero_ps();
    for (int32_t t = 0; t < a.dims_per_block; ++t) {
      const __m256 q = _mm256_set1_ps(a.query[b * a.dims_per_block + t]);
      const float* c = a.centers + (int64_t{b} * a.dims_per_block + t) * 16;
      lo_acc = _mm256_fmadd_ps(q, _mm256_loadu_ps(c), lo_acc);
      hi_acc = _mm256_fmadd_ps(q, _mm256_loadu_ps(c + 8), hi_acc);
    }
    _mm256_storeu_ps(lut + b * 16, lo_acc);
    _mm256_storeu_ps(lut + b * 16 + 8, hi_acc);
    const float lo = ReduceMin(_mm256_min_ps(lo_acc, hi_acc)), hi = ReduceMax(_mm256_max_ps(lo_acc, hi_acc));
    mins[b] = lo;
    total_min += lo;
    widest = hi - lo > widest ? hi - lo : widest;
  }
  const float scale = Lut16Scale(widest);
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int32_t b = 0; b < a.num_blocks; ++b) {
    const __m256 m = _mm256_set1_ps(mins[b]);
    const __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(lut + b * 16), m), vscale));
    const __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(lut + b * 16 + 8), m), vscale));
    // Saturating packs clamp to [0, 255]; the 128-bit lane interleave of the
    // packs is undone by the final permute.
    const __m256i w = _mm256_packs_epi32(q0, q1);
    const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(_mm256_permute4x64_epi64(w, 0xD8)),
                                           _mm256_extracti128_si256(_mm256_permute4x64_epi64(w, 0xD8), 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a.table + b * 16), bytes);
  }
  Lut16FinishBuild(a, scale, total_min);
}

}  // namespace annlib
