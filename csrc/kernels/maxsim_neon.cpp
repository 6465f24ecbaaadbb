// NEON MaxSim (AArch64): 4-wide rows, 4 x 4 tiles (16 accumulators of 32 registers).
#include <arm_neon.h>

#include "maxsim.h"

#include <cstdint>
#include <cstring>
#include <limits>

namespace annlib {
namespace {

void WidenRow(const MaxSimArgs& a, int64_t token, float* out) {
  const int32_t full = a.dim / 4 * 4;
  if (a.type == TokenType::kFloat16) {
    const uint16_t* row = static_cast<const uint16_t*>(a.tokens) + token * a.dim;
    auto widen4 = [](const uint16_t* p, float* dst) {
      vst1q_f32(dst, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))));
    };
    for (int32_t t = 0; t < full; t += 4) widen4(row + t, out + t);
    if (full < a.dim) {
      uint16_t tail[4] = {0};
      std::memcpy(tail, row + full, sizeof(uint16_t) * (a.dim - full));
      widen4(tail, out + full);
    }
  } else {
    const int8_t* row = static_cast<const int8_t*>(a.tokens) + token * a.dim;
    const float32x4_t scale = vdupq_n_f32(a.token_scale[token]);
    auto widen4 = [&](const int8_t* p, float* dst) {
      int32_t word;  // exactly four bytes
      std::memcpy(&word, p, sizeof word);
      const int16x8_t wide = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(word)));
      vst1q_f32(dst, vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide))), scale));
    };
    for (int32_t t = 0; t < full; t += 4) widen4(row + t, out + t);
    if (full < a.dim) {
      int8_t tail[4] = {0};
      std::memcpy(tail, row + full, a.dim - full);
      widen4(tail, out + full);
    }
  }
  for (int32_t t = (a.dim + 3) / 4 * 4; t < a.padded_dim; ++t) out[t] = 0.0f;
}

void TileMax(const float* q, const float* d, int32_t pd, float* best) {
  float32x4_t acc[4][4];
  for (auto& row : acc)
    for (auto& v : row) v = vdupq_n_f32(0.0f);
  for (int32_t t = 0; t < pd; t += 4) {
    float32x4_t dv[4];
    for (int j = 0; j < 4; ++j) dv[j] = vld1q_f32(d + int64_t{j} * pd + t);
    for (int i = 0; i < 4; ++i) {
      const float32x4_t qi = vld1q_f32(q + int64_t{i} * pd + t);
      for (int j = 0; j < 4; ++j) acc[i][j] = vfmaq_f32(acc[i][j], qi, dv[j]);
    }
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const float s = vaddvq_f32(acc[i][j]);
      if (s > best[i]) best[i] = s;
    }
}

#include "maxsim-inl.h"

}  // namespace

void MaxSimNeon(const MaxSimArgs& a) { MaxSimDocs(a); }

}  // namespace annlib
