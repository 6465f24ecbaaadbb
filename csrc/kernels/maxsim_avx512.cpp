// AVX-512 MaxSim: 16-wide rows, 4 x 4 tiles in 16 zmm accumulators; masked
// loads widen the last partial chunk of a row.
#include <immintrin.h>

#include "maxsim.h"

#include <cstdint>
#include <limits>

namespace annlib {
namespace {

void WidenRow(const MaxSimArgs& a, int64_t token, float* out) {
  for (int32_t t = 0; t < a.padded_dim; t += 16) {
    const int32_t left = a.dim - t;
    const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
    __m512 v;
    if (a.type == TokenType::kFloat16) {
      const uint16_t* row = static_cast<const uint16_t*>(a.tokens) + token * a.dim;
      v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row + t));
    } else {
      const int8_t* row = static_cast<const int8_t*>(a.tokens) + token * a.dim;
      const __m512i wide = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, row + t));
      v = _mm512_mul_ps(_mm512_cvtepi32_ps(wide), _mm512_set1_ps(a.token_scale[token]));
    }
    _mm512_storeu_ps(out + t, v);
  }
}

void TileMax(const float* q, const float* d, int32_t pd, float* best) {
  __m512 acc[4][4];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_ps();
  for (int32_t t = 0; t < pd; t += 16) {
    __m512 dv[4];
    for (int j = 0; j < 4; ++j) dv[j] = _mm512_loadu_ps(d + int64_t{j} * pd + t);
    for (int i = 0; i < 4; ++i) {
      const __m512 qi = _mm512_loadu_ps(q + int64_t{i} * pd + t);
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(qi, dv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < 4; ++i) {
    float m = best[i];
    for (int j = 0; j < 4; ++j) {
      const float s = _mm512_reduce_add_ps(acc[i][j]);
      if (s > m) m = s;
    }
    best[i] = m;
  }
}

#include "maxsim-inl.h"

}  // namespace

void MaxSimAvx512(const MaxSimArgs& a) { MaxSimDocs(a); }

}  // namespace annlib
