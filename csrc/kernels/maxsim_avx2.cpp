// AVX2 + FMA + F16C MaxSim: 8-wide rows, each 4 x 4 tile run as two 4 x 2
// halves (8 accumulators fit the 16 ymm registers with the loads).
#include <immintrin.h>

#include "maxsim.h"

#include <cstdint>
#include <cstring>
#include <limits>

namespace annlib {
namespace {

float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void WidenRow(const MaxSimArgs& a, int64_t token, float* out) {
  const int32_t full = a.dim / 8 * 8;
  if (a.type == TokenType::kFloat16) {
    const uint16_t* row = static_cast<const uint16_t*>(a.tokens) + token * a.dim;
    for (int32_t t = 0; t < full; t += 8)
      _mm256_storeu_ps(out + t, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + t))));
    if (full < a.dim) {
      uint16_t tail[8] = {0};
      std::memcpy(tail, row + full, sizeof(uint16_t) * (a.dim - full));
      _mm256_storeu_ps(out + full, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tail))));
    }
  } else {
    const int8_t* row = static_cast<const int8_t*>(a.tokens) + token * a.dim;
    const __m256 scale = _mm256_set1_ps(a.token_scale[token]);
    auto widen8 = [&](const int8_t* p, float* dst) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
      _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)), scale));
    };
    for (int32_t t = 0; t < full; t += 8) widen8(row + t, out + t);
    if (full < a.dim) {
      int8_t tail[8] = {0};
      std::memcpy(tail, row + full, a.dim - full);
      widen8(tail, out + full);
    }
  }
  const int32_t written = (a.dim + 7) / 8 * 8;
  for (int32_t t = written; t < a.padded_dim; ++t) out[t] = 0.0f;
}

void TileMaxHalf(const float* q, const float* d, int32_t pd, float* best) {
  __m256 acc[4][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_ps();
  for (int32_t t = 0; t < pd; t += 8) {
    const __m256 d0 = _mm256_loadu_ps(d + t), d1 = _mm256_loadu_ps(d + pd + t);
    for (int i = 0; i < 4; ++i) {
      const __m256 qi = _mm256_loadu_ps(q + int64_t{i} * pd + t);
      acc[i][0] = _mm256_fmadd_ps(qi, d0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(qi, d1, acc[i][1]);
    }
  }
  for (int i = 0; i < 4; ++i) {
    const float s0 = HorizontalSum(acc[i][0]), s1 = HorizontalSum(acc[i][1]);
    const float m = s0 > s1 ? s0 : s1;
    if (m > best[i]) best[i] = m;
  }
}

void TileMax(const float* q, const float* d, int32_t pd, float* best) {
  TileMaxHalf(q, d, pd, best);
  TileMaxHalf(q, d + 2 * int64_t{pd}, pd, best);
}

#include "maxsim-inl.h"

}  // namespace

void MaxSimAvx2(const MaxSimArgs& a) { MaxSimDocs(a); }

}  // namespace annlib
