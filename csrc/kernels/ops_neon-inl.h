// AArch64 NEON vector operations shared by the neon and neon_dotprod units. With
// ANNLIB_NEON_DOTPROD defined (Armv8.2's dot product extension), int8 dots use
// sdot; without it, widening multiplies and pairwise adds.

struct Ops {
  static constexpr int W = 4;
  static constexpr int kInt8QueryOffset = 0;  // signed x signed products (smull, or sdot)
  using V = float32x4_t;
  using VI = int32x4_t;
  using XI = int8x16_t;
  static V zero() { return vdupq_n_f32(0.0f); }
  static V load(const float* p) { return vld1q_f32(p); }
  static V set1(float x) { return vdupq_n_f32(x); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V sub(V a, V b) { return vsubq_f32(a, b); }
  static V min(V a, V b) { return vminq_f32(a, b); }
  static V max(V a, V b) { return vmaxq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V fmadd(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  // Lanes of mask: scores[l] = s[l], ids[l] = first_id + l (binned selection's bin slots).
  static void store_winners(float* scores, int32_t* ids, uint32_t mask, V s, int32_t first_id) {
    float lanes[W];
    store(lanes, s);
    for (int l = 0; l < W; ++l)
      if ((mask >> l) & 1u) {
        scores[l] = lanes[l];
        ids[l] = first_id + l;
      }
  }
  static uint32_t gt_mask(V a, V b) {
    static const uint32_t kBits[4] = {1, 2, 4, 8};
    return vaddvq_u32(vandq_u32(vcgtq_f32(a, b), vld1q_u32(kBits)));
  }
  // Four points' (even, odd) dimension pair: bfloat16 is the top half of a float32.
  static void bf16_pair(const uint16_t* p, V& even, V& odd) {
    const uint32x4_t x = vreinterpretq_u32_u16(vld1q_u16(p));
    even = vreinterpretq_f32_u32(vshlq_n_u32(x, 16));
    odd = vreinterpretq_f32_u32(vandq_u32(x, vdupq_n_u32(0xFFFF0000u)));
  }
  static VI zero_i() { return vdupq_n_s32(0); }
  static VI load_i(const int32_t* p) { return vld1q_s32(p); }
  static VI sub_i(VI a, VI b) { return vsubq_s32(a, b); }
  static VI shl7_i(VI a) { return vshlq_n_s32(a, 7); }
  static VI set1_i(int32_t q) { return vdupq_n_s32(q); }
  static XI load_x(const int8_t* x) { return vld1q_s8(x); }
#ifdef ANNLIB_NEON_DOTPROD
  // Four points x four dimensions in one instruction (sdot: each 32-bit lane
  // adds the products of its four byte pairs).
  static VI dot4(VI acc, VI q, XI x) { return vdotq_s32(acc, x, vreinterpretq_s8_s32(q)); }
#else
  // Four points x four dimensions: byte products widened to 16 bits, summed in
  // pairs (within int16: |q|, |x| <= 127), then in pairs again into 32 bits.
  static VI dot4(VI acc, VI q, XI x) {
    const int8x16_t qb = vreinterpretq_s8_s32(q);
    const int16x8_t lo = vmull_s8(vget_low_s8(x), vget_low_s8(qb));
    const int16x8_t hi = vmull_high_s8(x, qb);
    return vpadalq_s16(acc, vpaddq_s16(lo, hi));
  }
#endif
  static V to_float(VI a) { return vcvtq_f32_s32(a); }
  static float hsum(V v) { return vaddvq_f32(v); }
  static V load_bf16(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
  static V load_i8(const int8_t* p) {
    int32_t word;  // exactly four bytes: the row may end right after them
    std::memcpy(&word, p, sizeof word);
    const int16x8_t wide = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(word)));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide)));
  }
};

// 6 queries x 16 points: 24 accumulators + 4 point vectors of the 32 registers.
constexpr int kMR = 6;
constexpr int kTileWidth = 16;

