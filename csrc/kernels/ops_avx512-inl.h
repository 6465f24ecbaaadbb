// AVX-512 (F/BW/DQ/VL) vector operations shared by the avx512, avx512_vnni,
// avx512_bf16 and amx units. With ANNLIB_AVX512_VNNI defined, int8 dots use
// vpdpbusd (unsigned query bytes, offset by 128, corrected with the per-point
// code sums).
#ifdef ANNLIB_AVX512_VNNI
#include "dot_bytes_vnni-inl.h"
#endif

struct Ops {
  static constexpr int W = 16;
#ifdef ANNLIB_AVX512_VNNI
  static constexpr int kInt8QueryOffset = 128;
#else
  static constexpr int kInt8QueryOffset = 0;
#endif
  using V = __m512;
  using VI = __m512i;
  struct XI {
    __m512i x, abs_x;
    __mmask64 negative;
  };
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static uint32_t gt_mask(V a, V b) {
    return static_cast<uint32_t>(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ));
  }
  // Lanes of mask: scores[l] = s[l], ids[l] = first_id + l (binned selection's
  // bin slots): two masked stores, no branch per lane.
  static void store_winners(float* scores, int32_t* ids, uint32_t mask, V s, int32_t first_id) {
    const __mmask16 m = static_cast<__mmask16>(mask);
    _mm512_mask_storeu_ps(scores, m, s);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    _mm512_mask_storeu_epi32(ids, m, _mm512_add_epi32(_mm512_set1_epi32(first_id), lane));
  }
  static void bf16_pair(const uint16_t* p, V& even, V& odd) {
    __m512i x = _mm512_loadu_si512(p);
    even = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
    odd = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
  static VI zero_i() { return _mm512_setzero_si512(); }
  static VI load_i(const int32_t* p) { return _mm512_loadu_si512(p); }
  static VI sub_i(VI a, VI b) { return _mm512_sub_epi32(a, b); }
  static VI shl7_i(VI a) { return _mm512_slli_epi32(a, 7); }
  static VI set1_i(int32_t q) { return _mm512_set1_epi32(q); }
#ifdef ANNLIB_AVX512_VNNI
  static XI load_x(const int8_t* x) { return {_mm512_loadu_si512(x), _mm512_setzero_si512(), 0}; }
  static VI dot4(VI acc, VI q, XI x) { return DotBytes(acc, q, x.x); }
#else
  static XI load_x(const int8_t* x) {
    __m512i v = _mm512_loadu_si512(x);
    return {v, _mm512_abs_epi8(v), _mm512_movepi8_mask(v)};
  }
  // |x| * (q with the sign of x): both in [-127, 127], so pmaddubsw cannot saturate.
  static VI dot4(VI acc, VI q, XI x) {
    __m512i signed_q = _mm512_mask_sub_epi8(q, x.negative, _mm512_setzero_si512(), q);
    __m512i pairs = _mm512_maddubs_epi16(x.abs_x, signed_q);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
  }
#endif
  static V to_float(VI a) { return _mm512_cvtepi32_ps(a); }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
  static V load_bf16(const uint16_t* p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  static V load_i8(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
};

constexpr int kMR = 8;
constexpr int kTileWidth = 32;
