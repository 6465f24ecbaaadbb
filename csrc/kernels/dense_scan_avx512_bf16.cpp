// AVX-512 + VNNI + BF16 dense scan kernels (Zen 4, Sapphire Rapids and later):
// int8 dots with vpdpbusd and bfloat16 dots with vdpbf16ps, two to four times
// the multiply-adds per instruction of the float32 path.
#include <immintrin.h>

#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#define ANNLIB_AVX512_VNNI 1

namespace annlib {
namespace isa_avx512_bf16 {
namespace {
#include "ops_avx512-inl.h"
}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"
#include "row_select-inl.h"
#include "ah_encode-inl.h"

namespace {

// bfloat16 database and bfloat16-rounded query, multiplied pairwise by
// vdpbf16ps into float32 accumulators.
struct TileBf16Native {
  static constexpr bool kStaged = false;
  static constexpr int kDimsPerRow = 2;
  static constexpr int kQueryRowBytes = 4;
  static constexpr int kQueryParams = 0;
  static void PackQueries(const float* q, int m, int dim, void* dst, float*) {
    uint32_t* out = static_cast<uint32_t*>(dst);
    const int64_t rows = DimGroups(dim, 2);
    for (int64_t t = 0; t < rows; ++t)
      for (int i = 0; i < kMR; ++i) {
        uint32_t word = 0;
        for (int h = 0; h < 2; ++h) {
          const int64_t dd = 2 * t + h;
          if (i < m && dd < dim) word |= uint32_t{RoundToBf16(q[int64_t{i} * dim + dd])} << (16 * h);
        }
        out[t * kMR + i] = word;
      }
  }
  template <int M>
  static void Tile(const uint8_t* panel_rows, int lane_off, const uint8_t* query_rows, int64_t nrows,
                   bool first, void* acc_buf) {
    const uint16_t* x = reinterpret_cast<const uint16_t*>(panel_rows) + 2 * lane_off;
    const int32_t* q = reinterpret_cast<const int32_t*>(query_rows);
    __m512 acc[M][kVecsPerTile];
    LoadOrZero<M>(acc, acc_buf, first, Ops::zero);
    for (int64_t t = 0; t < nrows; ++t) {
      __m512bh xv[kVecsPerTile];
      for (int v = 0; v < kVecsPerTile; ++v)
        xv[v] = (__m512bh)_mm512_loadu_si512(x + t * 2 * kPanelWidth + v * 2 * Ops::W);
      for (int i = 0; i < M; ++i) {
        __m512bh qi = (__m512bh)_mm512_set1_epi32(q[t * kMR + i]);
        for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], qi, xv[v]);
      }
    }
    StoreAcc<M>(acc, acc_buf);
  }
  static void Finish(int, void*, const float*, int64_t, const ScanArgs&) {}
};

// float32 panels screened in bfloat16 (binned mode only): each slice of a
// panel is rounded to bf16 pairs once per query block, then scanned like a
// bf16 database, twice the multiply-adds per instruction of float32. The
// scores only choose each bin's winner (relative error up to 2^-7 per
// product); the driver rescores the winners exactly.
// Query and point rounded to bf16 (8 significant bits): (1 + 2^-8)^2 - 1.
constexpr double kBf16ScreenError = 1.0 / 128 + 1.0 / 65536;
// Staging a slice costs about as much as screening 8 queries on it: blocks of
// 8 queries ran 0.65x exact on SIFT, of 16 1.01x, of 32 1.23x (words 0.92x /
// 1.10x / 1.22x; 2 threads, Zen 4).
constexpr int32_t kBf16ScreenMinQueries = 16;

struct TileF32Bf16Screen : TileBf16Native {
  static constexpr bool kStaged = true;
  // bf16 rows [r0, r0 + nrows) from the float32 panel: row t holds dimensions
  // 2t and 2t + 1, point l's pair at bytes 4l .. 4l + 3 (zero past dim).
  static void Stage(const uint8_t* panel, int dim, int64_t r0, int64_t nrows, uint8_t* out) {
    alignas(64) static constexpr uint16_t kInterleave[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21,
                                                             6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27,
                                                             12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i interleave = _mm512_load_si512(kInterleave);
    const float* x = reinterpret_cast<const float*>(panel);
    for (int64_t t = 0; t < nrows; ++t) {
      const int64_t even = 2 * (r0 + t), odd = even + 1;
      for (int h = 0; h < 2; ++h) {  // points 0-15, then 16-31
        const __m512 ev = even < dim ? _mm512_loadu_ps(x + even * kPanelWidth + 16 * h) : _mm512_setzero_ps();
        const __m512 od = odd < dim ? _mm512_loadu_ps(x + odd * kPanelWidth + 16 * h) : _mm512_setzero_ps();
        // Words 0-15: the even dimension of the 16 points; 16-31: the odd one.
        const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(od, ev);
        _mm512_store_si512(out + t * kRowBytes + 64 * h, _mm512_permutexvar_epi16(interleave, pairs));
      }
    }
  }
};

}  // namespace
}  // namespace isa_avx512_bf16

const DenseKernels& DenseKernelsAvx512Bf16(bool native_bf16) {
  using namespace isa_avx512_bf16;
  // Only the native variant screens: widening bf16 costs as many FMAs as float32.
  static const DenseKernels native{"avx512_bf16", {&Scan<TileF32>, &Scan<TileBf16Native>, &Scan<TileInt8>}, &Rescore,
                                   {&AtMost, &Smallest, &LaneMaxima, &AtLeast}, &AhEncodePoint,
                                   &Scan<TileF32Bf16Screen>, kBf16ScreenError, kBf16ScreenMinQueries, true,
                                   &ScorePointsF32, true};
  static const DenseKernels widened{"avx512_bf16", {&Scan<TileF32>, &Scan<TileBf16>, &Scan<TileInt8>}, &Rescore,
                                    {&AtMost, &Smallest, &LaneMaxima, &AtLeast}, &AhEncodePoint,
                                    nullptr, 0.0, 0, false, &ScorePointsF32, true};
  return native_bf16 ? native : widened;
}

}  // namespace annlib
