// Body of the SIMD LUT16 kernels, included in each ISA unit's anonymous
// namespace after it has defined
//   struct Ops {
//     static constexpr int kBlocks;        // blocks per register (16 bytes each)
//     using V;                             // integer vector of kBlocks * 16 bytes
//     V zero(); V load(const uint8_t*); V low_nibbles(V); V high_nibbles(V);
//     V shuffle(V table, V index);         // pshufb within 128-bit lanes
//     V add16(V acc, V x);                // 16-bit lanes: acc + x
//     V add_high8(V acc, V x);            // 16-bit lanes: acc + (x >> 8)
//     void add_half(V a, V b, bool first, int32_t* totals);  // fold lanes into 16 totals
//                                          // (stored when first, else added)
//     uint32_t score(const Lut16Args&, int64_t group, const int32_t* totals, float* scores);
//     void select(const Lut16Args&, int64_t group, const float* scores, uint32_t mask);
//                                          // the survivors to the buffer, as Lut16Select
//   };
//     static constexpr int kMaxQueries;   // queries per pass that fit the registers
// Needs lut16-inl.h (Lut16Select) included first.

inline void Lut16ScanBody(const annlib::Lut16Args& a) {
  using annlib::kLut16Group;
  const int64_t groups = (a.num_points + kLut16Group - 1) / kLut16Group;
  alignas(64) int32_t totals[kLut16Group];
  float scores[kLut16Group];
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* codes = a.codes + g * a.num_blocks * 16;
    // A 128-bit lane sees every kBlocks-th block: at most 256 / kBlocks byte
    // terms per 16-bit lane in a chunk of 256 blocks, and the folded lanes
    // sum to at most 255 * 256 = 65280, so nothing overflows.
    for (int32_t b0 = 0; b0 < a.num_blocks; b0 += 256) {
      const int32_t b1 = a.num_blocks - b0 < 256 ? a.num_blocks : b0 + 256;
      typename Ops::V lo_a = Ops::zero(), lo_b = Ops::zero(), hi_a = Ops::zero(), hi_b = Ops::zero();
      for (int32_t b = b0; b < b1; b += Ops::kBlocks) {
        const typename Ops::V c = Ops::load(codes + b * 16);
        const typename Ops::V table = Ops::load(a.lut + b * 16);
        const typename Ops::V r_lo = Ops::shuffle(table, Ops::low_nibbles(c));
        const typename Ops::V r_hi = Ops::shuffle(table, Ops::high_nibbles(c));
        // As 16-bit lanes: a += even + 256 * odd byte, b += odd byte; the even
        // sums are recovered later as a - (b << 8), with no widening per step.
        lo_a = Ops::add16(lo_a, r_lo);
        lo_b = Ops::add_high8(lo_b, r_lo);
        hi_a = Ops::add16(hi_a, r_hi);
        hi_b = Ops::add_high8(hi_b, r_hi);
      }
      Ops::add_half(lo_a, lo_b, b0 == 0, totals);
      Ops::add_half(hi_a, hi_b, b0 == 0, totals + 16);
    }
    Ops::select(a, g, scores, Ops::score(a, g, totals, scores));
  }
}

// Q queries per pass: the codes are loaded and split into nibbles once, then
// looked up in each query's table (4 accumulators per query).
template <int Q>
inline void Lut16ScanMultiPass(const annlib::Lut16Args* a) {
  using annlib::kLut16Group;
  const int64_t groups = (a[0].num_points + kLut16Group - 1) / kLut16Group;
  const int32_t num_blocks = a[0].num_blocks;
  alignas(64) int32_t totals[Q][kLut16Group];
  float scores[kLut16Group];
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* codes = a[0].codes + g * num_blocks * 16;
    for (int32_t b0 = 0; b0 < num_blocks; b0 += 256) {  // widening as in Lut16ScanBody
      const int32_t b1 = num_blocks - b0 < 256 ? num_blocks : b0 + 256;
      typename Ops::V lo_a[Q], lo_b[Q], hi_a[Q], hi_b[Q];
      for (int j = 0; j < Q; ++j) lo_a[j] = lo_b[j] = hi_a[j] = hi_b[j] = Ops::zero();
      for (int32_t b = b0; b < b1; b += Ops::kBlocks) {
        const typename Ops::V c = Ops::load(codes + b * 16);
        const typename Ops::V lo = Ops::low_nibbles(c), hi = Ops::high_nibbles(c);
        for (int j = 0; j < Q; ++j) {
          const typename Ops::V table = Ops::load(a[j].lut + b * 16);
          const typename Ops::V r_lo = Ops::shuffle(table, lo);
          const typename Ops::V r_hi = Ops::shuffle(table, hi);
          lo_a[j] = Ops::add16(lo_a[j], r_lo);
          lo_b[j] = Ops::add_high8(lo_b[j], r_lo);
          hi_a[j] = Ops::add16(hi_a[j], r_hi);
          hi_b[j] = Ops::add_high8(hi_b[j], r_hi);
        }
      }
      for (int j = 0; j < Q; ++j) {
        Ops::add_half(lo_a[j], lo_b[j], b0 == 0, totals[j]);
        Ops::add_half(hi_a[j], hi_b[j], b0 == 0, totals[j] + 16);
      }
    }
    for (int j = 0; j < Q; ++j) Ops::select(a[j], g, scores, Ops::score(a[j], g, totals[j], scores));
  }
}

inline void Lut16ScanMultiBody(const annlib::Lut16Args* a, int count) {
  while (count > 0) {
    const int q = count < Ops::kMaxQueries ? count : Ops::kMaxQueries;
    switch (q) {
      case 1: Lut16ScanBody(a[0]); break;
      case 2: Lut16ScanMultiPass<2>(a); break;
      case 3: Lut16ScanMultiPass<3>(a); break;
      default: Lut16ScanMultiPass<4>(a); break;
    }
    a += q;
    count -= q;
  }
}
