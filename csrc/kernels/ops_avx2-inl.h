// AVX2 + FMA vector operations shared by the avx2 and avx2_vnni units. With
// ANNLIB_AVX_VNNI defined, int8 dots use AVX-VNNI's vpdpbusd (unsigned query
// bytes, offset by 128, corrected with the per-point code sums); without it,
// pmaddubsw on |x| and the query with x's sign.
#ifdef ANNLIB_AVX_VNNI
#include "dot_bytes_vnni-inl.h"
#endif

struct Ops {
  static constexpr int W = 8;
#ifdef ANNLIB_AVX_VNNI
  static constexpr int kInt8QueryOffset = 128;
#else
  static constexpr int kInt8QueryOffset = 0;
#endif
  using V = __m256;
  using VI = __m256i;
  struct XI {
    __m256i x, abs_x;
  };
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // Lanes of mask: scores[l] = s[l], ids[l] = first_id + l (binned selection's
  // bin slots, owned by one thread): blends written back whole, no branch per
  // lane. (vmaskmov stores are microcoded on AMD: binned float32 ran 0.69-0.87x
  // exact with them at this level on Zen 4.)
  static void store_winners(float* scores, int32_t* ids, uint32_t mask, V s, int32_t first_id) {
    if (mask == 0) return;
    const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(mask)), bits), bits);
    _mm256_storeu_ps(scores, _mm256_blendv_ps(_mm256_loadu_ps(scores), s, _mm256_castsi256_ps(m)));
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i* id_lanes = reinterpret_cast<__m256i*>(ids);
    _mm256_storeu_si256(id_lanes, _mm256_blendv_epi8(_mm256_loadu_si256(id_lanes),
                                                     _mm256_add_epi32(_mm256_set1_epi32(first_id), lane), m));
  }
  static uint32_t gt_mask(V a, V b) {
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)));
  }
  static void bf16_pair(const uint16_t* p, V& even, V& odd) {
    __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    even = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
    odd = _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
  static VI zero_i() { return _mm256_setzero_si256(); }
  static VI load_i(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static VI sub_i(VI a, VI b) { return _mm256_sub_epi32(a, b); }
  static VI shl7_i(VI a) { return _mm256_slli_epi32(a, 7); }
  static VI set1_i(int32_t q) { return _mm256_set1_epi32(q); }
#ifdef ANNLIB_AVX_VNNI
  static XI load_x(const int8_t* x) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)), _mm256_setzero_si256()};
  }
  static VI dot4(VI acc, VI q, XI x) { return DotBytes(acc, q, x.x); }
#else
  static XI load_x(const int8_t* x) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    return {v, _mm256_abs_epi8(v)};
  }
  // |x| * sign(q, x) keeps pmaddubsw's pair sums within int16: both factors
  // are in [-127, 127] (codes never use -128), so no saturation.
  static VI dot4(VI acc, VI q, XI x) {
    __m256i pairs = _mm256_maddubs_epi16(x.abs_x, _mm256_sign_epi8(q, x.x));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
#endif
  static V to_float(VI a) { return _mm256_cvtepi32_ps(a); }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  static V load_bf16(const uint16_t* p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static V load_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
};

constexpr int kMR = 6;
constexpr int kTileWidth = 16;
