// Scalar MaxSim: the reference for the SIMD versions (and their float16 decoder).
#include "maxsim.h"

#include <cstdint>
#include <cstring>
#include <limits>

namespace annlib {
namespace {

// IEEE binary16 -> binary32, exact for every value (subnormals, inf, NaN).
float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void WidenRow(const MaxSimArgs& a, int64_t token, float* out) {
  if (a.type == TokenType::kFloat16) {
    const uint16_t* row = static_cast<const uint16_t*>(a.tokens) + token * a.dim;
    for (int32_t t = 0; t < a.dim; ++t) out[t] = HalfToFloat(row[t]);
  } else {
    const int8_t* row = static_cast<const int8_t*>(a.tokens) + token * a.dim;
    const float scale = a.token_scale[token];
    for (int32_t t = 0; t < a.dim; ++t) out[t] = static_cast<float>(row[t]) * scale;
  }
  for (int32_t t = a.dim; t < a.padded_dim; ++t) out[t] = 0.0f;
}

void TileMax(const float* q, const float* d, int32_t pd, float* best) {
  for (int i = 0; i < kMaxSimTile; ++i)
    for (int j = 0; j < kMaxSimTile; ++j) {
      float dot = 0.0f;
      for (int32_t t = 0; t < pd; ++t) dot += q[int64_t{i} * pd + t] * d[int64_t{j} * pd + t];
      if (dot > best[i]) best[i] = dot;
    }
}

#include "maxsim-inl.h"

}  // namespace

void MaxSimScalar(const MaxSimArgs& a) { MaxSimDocs(a); }

}  // namespace annlib
