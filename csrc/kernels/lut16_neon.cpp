// NEON LUT16 scan (AArch64): one block per 128-bit table lookup (tbl).
#include <arm_neon.h>

#include "lut16.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace annlib {
namespace {
#include "lut16-inl.h"

struct Ops {
  static constexpr int kBlocks = 1;
  static constexpr int kMaxQueries = 4;  // 16 accumulators + temporaries of 32 registers
  using V = uint8x16_t;
  static V zero() { return vdupq_n_u8(0); }
  static V load(const uint8_t* p) { return vld1q_u8(p); }
  static V low_nibbles(V c) { return vandq_u8(c, vdupq_n_u8(0x0F)); }
  static V high_nibbles(V c) { return vshrq_n_u8(c, 4); }
  static V shuffle(V table, V index) { return vqtbl1q_u8(table, index); }
  // On GCC asm statements that add into the accumulator in place (the second a
  // shift-right-and-accumulate, usra): with the intrinsics, GCC 12 gave the
  // four-query loop 22 register moves and a spill in its 58 instructions (34
  // without); tests/test_binary.py counts them in the cross-built library.
  static V add16(V acc, V x) {
#if defined(__GNUC__) && !defined(__clang__)
    __asm__("add %0.8h, %0.8h, %1.8h" : "+w"(acc) : "w"(x));
    return acc;
#else
    return vreinterpretq_u8_u16(vaddq_u16(vreinterpretq_u16_u8(acc), vreinterpretq_u16_u8(x)));
#endif
  }
  static V add_high8(V acc, V x) {
#if defined(__GNUC__) && !defined(__clang__)
    __asm__("usra %0.8h, %1.8h, #8" : "+w"(acc) : "w"(x));
    return acc;
#else
    return vreinterpretq_u8_u16(vsraq_n_u16(vreinterpretq_u16_u8(acc), vreinterpretq_u16_u8(x), 8));
#endif
  }

  // 16-bit lane m of `a - (b << 8)` sums point 2m and of `b` point 2m + 1 (one
  // block per register, so no lanes to fold): interleave into order, widen.
  static void add_half(V a, V b, bool first, int32_t* totals) {
    const uint16x8_t odd = vreinterpretq_u16_u8(b);
    const uint16x8_t even = vsubq_u16(vreinterpretq_u16_u8(a), vshlq_n_u16(odd, 8));
    const uint16x8_t lo = vzip1q_u16(even, odd), hi = vzip2q_u16(even, odd);
    const int32x4_t parts[4] = {vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo))),
                                vreinterpretq_s32_u32(vmovl_high_u16(lo)),
                                vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi))),
                                vreinterpretq_s32_u32(vmovl_high_u16(hi))};
    for (int v = 0; v < 4; ++v) {
      if (first) {  // (no read of the not yet written totals)
        vst1q_s32(totals + 4 * v, parts[v]);
      } else {
        vst1q_s32(totals + 4 * v, vaddq_s32(vld1q_s32(totals + 4 * v), parts[v]));
      }
    }
  }

  static uint32_t score(const Lut16Args& a, int64_t group, const int32_t* totals, float* scores) {
    static const uint32_t kBits[4] = {1, 2, 4, 8};
    const float32x4_t inv_scale = vdupq_n_f32(a.inv_scale), base = vdupq_n_f32(a.base);
    const float32x4_t threshold = vdupq_n_f32(a.candidates->threshold);
    const uint32x4_t bits = vld1q_u32(kBits);
    uint32_t mask = 0;
    for (int v = 0; v < 8; ++v) {
      // inv_scale * total + base, rounded in two steps as the other levels do.
      float32x4_t s = vaddq_f32(vmulq_f32(inv_scale, vcvtq_f32_s32(vld1q_s32(totals + 4 * v))), base);
      if (a.point_bias != nullptr) s = vaddq_f32(s, vld1q_f32(a.point_bias + group * kLut16Group + 4 * v));
      vst1q_f32(scores + 4 * v, s);
      mask |= vaddvq_u32(vandq_u32(vcgeq_f32(s, threshold), bits)) << (4 * v);
    }
    return mask;
  }
  static void select(const Lut16Args& a, int64_t group, const float* scores, uint32_t mask) {
    Lut16Select(a, group, scores, mask);
  }
};

#include "lut16_scan-inl.h"

}  // namespace

void Lut16ScanNeon(const Lut16Args& a) { Lut16ScanBody(a); }

void Lut16ScanMultiNeon(const Lut16Args* queries, int count) { Lut16ScanMultiBody(queries, count); }

void Lut16BuildNeon(const Lut16BuildArgs& a) {
  float* lut = a.scratch;
  float* mins = a.scratch + a.num_blocks * 16;
  float widest = 0.0f;
  double total_min = 0.0;
  for (int32_t b = 0; b < a.num_blocks; ++b) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    for (int32_t t = 0; t < a.dims_per_block; ++t) {
      const float32x4_t q = vdupq_n_f32(a.query[b * a.dims_per_block + t]);
      const float* c = a.centers + (int64_t{b} * a.dims_per_block + t) * 16;
      for (int v = 0; v < 4; ++v) acc[v] = vfmaq_f32(acc[v], q, vld1q_f32(c + 4 * v));
    }
    for (int v = 0; v < 4; ++v) vst1q_f32(lut + b * 16 + 4 * v, acc[v]);
    const float lo = vminvq_f32(vminq_f32(vminq_f32(acc[0], acc[1]), vminq_f32(acc[2], acc[3])));
    const float hi = vmaxvq_f32(vmaxq_f32(vmaxq_f32(acc[0], acc[1]), vmaxq_f32(acc[2], acc[3])));
    mins[b] = lo;
    total_min += lo;
    widest = hi - lo > widest ? hi - lo : widest;
  }
  const float scale = Lut16Scale(widest);
  const float32x4_t vscale = vdupq_n_f32(scale);
  for (int32_t b = 0; b < a.num_blocks; ++b) {
    const float32x4_t m = vdupq_n_f32(mins[b]);
    int32x4_t q[4];
    for (int v = 0; v < 4; ++v)  // round to nearest even, as nearbyint and cvtps2dq do
      q[v] = vcvtnq_s32_f32(vmulq_f32(vsubq_f32(vld1q_f32(lut + b * 16 + 4 * v), m), vscale));
    // Saturating narrows clamp to [0, 255].
    const int16x8_t w0 = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
    const int16x8_t w1 = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
    vst1q_u8(a.table + b * 16, vcombine_u8(vqmovun_s16(w0), vqmovun_s16(w1)));
  }
  Lut16FinishBuild(a, scale, total_min);
}

}  // namespace annlib
