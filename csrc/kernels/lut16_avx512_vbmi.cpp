// AVX-512 LUT16 scan with VBMI byte permutes and VNNI dot products: the
// avx512_bf16 level's scan where the CPU has both (Sapphire Rapids, AMD Zen 4
// and later; not Cooper Lake; Ice Lake has them but not BF16, so it runs the
// avx512 level). The same packed codes and tables as the AVX-512 unit, the
// same integer totals (so the same scores, bit for bit), in fewer
// instructions per four blocks.
//
// A 64-byte register of codes holds four blocks (one per 128-bit lane) of 32
// points (point i in byte i's low nibble, point i + 16 in its high nibble).
// One byte permute transposes it so that byte 4i + l holds block l of point
// i; the nibbles, with the block number l in bits 4-5, index the four blocks'
// tables (64 bytes) in one more permute each; and a dot product with ones
// adds each point's four looked-up bytes into its own 32-bit total. The
// AVX-512 unit instead looks up in 128-bit lanes and sums bytes in 16-bit
// lanes, which takes shifts, adds and a final fold.
#include <immintrin.h>

#include "lut16.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace annlib {
namespace {
#include "dot_bytes_vnni-inl.h"
#include "lut16-inl.h"
#include "lut16_select_avx512-inl.h"

constexpr int kMaxQueries = 4;  // kLut16MaxQueries; 8 accumulators + 4 shared registers

// Byte 4i + l of the result = byte 16l + i of the codes (i < 16, l < 4).
alignas(64) constexpr uint8_t kTranspose[64] = {
    0,  16, 32, 48, 1,  17, 33, 49, 2,  18, 34, 50, 3,  19, 35, 51, 4,  20, 36, 52, 5,  21,
    37, 53, 6,  22, 38, 54, 7,  23, 39, 55, 8,  24, 40, 56, 9,  25, 41, 57, 10, 26, 42, 58,
    11, 27, 43, 59, 12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};

// The table indexes of four blocks of codes: (low nibbles, high nibbles),
// each byte's block number in bits 4-5.
struct Indexes {
  __m512i lo, hi;
};

struct Constants {
  __m512i transpose = _mm512_load_si512(kTranspose);
  __m512i nibble = _mm512_set1_epi8(0x0F);
  __m512i block = _mm512_set1_epi32(0x30201000);  // byte 4i + l: l << 4
  __m512i ones = _mm512_set1_epi8(1);
};

inline Indexes SplitCodes(const Constants& k, const uint8_t* codes) {
  const __m512i c = _mm512_permutexvar_epi8(k.transpose, _mm512_loadu_si512(codes));
  // (x & nibble) | block in one ternary-logic instruction (truth table 0xEA).
  return {_mm512_ternarylogic_epi32(c, k.nibble, k.block, 0xEA),
          _mm512_ternarylogic_epi32(_mm512_srli_epi16(c, 4), k.nibble, k.block, 0xEA)};
}

// Adds four blocks' table values to each point's total: lo for points 0-15,
// hi for points 16-31 (32-bit lanes, exact: at most 255 per block).
inline void Accumulate(const Constants& k, const Indexes& x, const uint8_t* lut, __m512i& lo, __m512i& hi) {
  const __m512i table = _mm512_loadu_si512(lut);
  lo = DotBytes(lo, _mm512_permutexvar_epi8(x.lo, table), k.ones);
  hi = DotBytes(hi, _mm512_permutexvar_epi8(x.hi, table), k.ones);
}

inline void ScoreGroup(const Lut16Args& a, int64_t group, __m512i lo, __m512i hi) {
  alignas(64) int32_t totals[kLut16Group];
  float scores[kLut16Group];
  _mm512_store_si512(totals, lo);
  _mm512_store_si512(totals + 16, hi);
  Lut16SelectAvx512(a, group, scores, Lut16ScoreAvx512(a, group, totals, scores));
}

void ScanOne(const Lut16Args& a) {
  const Constants k;
  const int64_t groups = (a.num_points + kLut16Group - 1) / kLut16Group;
  const int32_t blocks = a.num_blocks;  // a multiple of 4
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* codes = a.codes + g * blocks * 16;
    // Two chains per half: a dot product's latency is several cycles.
    __m512i lo0 = _mm512_setzero_si512(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
    int32_t b = 0;
    for (; b + 8 <= blocks; b += 8) {
      Accumulate(k, SplitCodes(k, codes + b * 16), a.lut + b * 16, lo0, hi0);
      Accumulate(k, SplitCodes(k, codes + b * 16 + 64), a.lut + b * 16 + 64, lo1, hi1);
    }
    if (b < blocks) Accumulate(k, SplitCodes(k, codes + b * 16), a.lut + b * 16, lo0, hi0);
    ScoreGroup(a, g, _mm512_add_epi32(lo0, lo1), _mm512_add_epi32(hi0, hi1));
  }
}

// Q queries over one list: the codes are split once per four blocks.
template <int Q>
void ScanMany(const Lut16Args* a) {
  const Constants k;
  const int64_t groups = (a[0].num_points + kLut16Group - 1) / kLut16Group;
  const int32_t blocks = a[0].num_blocks;
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* codes = a[0].codes + g * blocks * 16;
    __m512i lo[Q], hi[Q];
    for (int j = 0; j < Q; ++j) lo[j] = hi[j] = _mm512_setzero_si512();
    for (int32_t b = 0; b < blocks; b += 4) {
      const Indexes x = SplitCodes(k, codes + b * 16);
      for (int j = 0; j < Q; ++j) Accumulate(k, x, a[j].lut + b * 16, lo[j], hi[j]);
    }
    for (int j = 0; j < Q; ++j) ScoreGroup(a[j], g, lo[j], hi[j]);
  }
}

}  // namespace

void Lut16ScanAvx512Vbmi(const Lut16Args& a) { ScanOne(a); }

void Lut16ScanMultiAvx512Vbmi(const Lut16Args* queries, int count) {
  static_assert(kMaxQueries == kLut16MaxQueries, "one pass per block of the batched search");
  while (count > 0) {
    const int q = count < kMaxQueries ? count : kMaxQueries;
    switch (q) {
      case 1: ScanOne(queries[0]); break;
      case 2: ScanMany<2>(queries); break;
      case 3: ScanMany<3>(queries); break;
      default: ScanMany<4>(queries); break;
    }
    queries += q;
    count -= q;
  }
}

}  // namespace annlib
