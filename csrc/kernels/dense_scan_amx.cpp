// Dense scans on AMX tiles (Intel Sapphire Rapids and later) for bfloat16 and
// int8 panels: one tdpbf16ps multiplies 16 queries by 16 points over 32
// dimensions (tdpbusd: 64 int8 dimensions), about thirteen times the
// multiply-adds per cycle of float32 FMA for bf16 (measured 1,459 against 114
// GMAC/s on one core), where vdpbf16ps runs at half the FMA rate.
//
// The bf16 and int8 panel layouts (128-byte rows of 32 points x 4 bytes) are
// already the B operand's VNNI packing: 16 rows of a panel are two B tiles,
// points 0-15 and 16-31, with a 128-byte stride. Queries are packed row-major
// (the A operand): bf16-rounded, or the int8 kernel's own affine codes. Each
// panel's 32 x 32 scores go through the vector kernels' Finish and selection
// epilogue, so filters, binned mode and the tie order behave identically.
#include <immintrin.h>

#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include <sys/syscall.h>
#include <unistd.h>

#define ANNLIB_AVX512_VNNI 1

namespace annlib {
namespace isa_amx {
namespace {
#include "ops_avx512-inl.h"
}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"

namespace {

constexpr int kQueriesPerPass = 32;  // two A tiles
constexpr int kRowsPerStep = 16;     // panel rows per K step (64 bytes of each point)
constexpr int kStepBytes = 64;       // bytes of one query per K step
// A pass costs the same for 1 or 32 queries; below this many, the vector
// kernels are cheaper (one bf16 query: 700 vs 580 QPS on SIFT).
constexpr int kMinQueries = 4;

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3: C (queries 0-15 / 16-31 x points 0-15 / 16-31); 4-5: A; 6-7: B.
void ConfigureTiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// bfloat16: queries rounded to bf16, pairs of dimensions per 4-byte lane.
struct AmxBf16 {
  using Vector = TileBf16;  // the widening kernel, for small calls
  static constexpr int kDimsPerRow = 2;
  static constexpr int kQueryParams = 0;
  // Query i's dimensions as bf16 at dst + i * stride bytes (zeroed beforehand).
  static void Pack(const ScanArgs& a, uint8_t* dst, int64_t stride, float*) {
    for (int i = 0; i < a.num_queries; ++i) {
      uint16_t* row = reinterpret_cast<uint16_t*>(dst + i * stride);
      for (int t = 0; t < a.dim; ++t) row[t] = RoundToBf16(a.queries[int64_t{i} * a.dim + t]);
    }
  }
  // C tiles 0-3 += A tiles 4-5 x B tiles 6-7 (the intrinsics take literal tile numbers).
  static void Dot() {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
};

// int8: the vector kernel's affine query codes (+128, unsigned, as vpdpbusd
// takes them), quads of dimensions per lane; int32 sums exact, so scores are
// bit-identical to the vector kernel's once TileInt8::Finish has run.
struct AmxInt8 {
  using Vector = TileInt8;
  static constexpr int kDimsPerRow = 4;
  static constexpr int kQueryParams = TileInt8::kQueryParams;
  static void Pack(const ScanArgs& a, uint8_t* dst, int64_t stride, float* params) {
    const int64_t rows = DimGroups(a.dim, 4);
    int32_t* packed = static_cast<int32_t*>(std::malloc(rows * kMR * 4));  // [rows][kMR], one group
    if (packed == nullptr) throw std::bad_alloc();
    for (int g = 0; g * kMR < a.num_queries; ++g) {
      const int m = a.num_queries - g * kMR < kMR ? a.num_queries - g * kMR : kMR;
      TileInt8::PackQueries(a.queries + int64_t{g} * kMR * a.dim, m, a.dim, packed, params + g * kMR * kQueryParams);
      for (int i = 0; i < m; ++i) {
        int32_t* row = reinterpret_cast<int32_t*>(dst + (g * kMR + i) * stride);
        for (int64_t t = 0; t < rows; ++t) row[t] = packed[t * kMR + i];
      }
    }
    std::free(packed);
  }
  static void Dot() {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
};

template <class P>
void ScanAmx(const ScanArgs& a) {
  const int nq = a.num_queries;
  if (nq <= 0 || a.panel_begin >= a.panel_end) return;
  if (nq < kMinQueries) return Scan<typename P::Vector>(a);
  const int64_t rows = DimGroups(a.dim, P::kDimsPerRow);
  const int64_t steps = (rows + kRowsPerStep - 1) / kRowsPerStep;
  const int64_t query_stride = steps * kStepBytes;
  const int passes = (nq + kQueriesPerPass - 1) / kQueriesPerPass;
  const int64_t query_bytes = int64_t{passes} * kQueriesPerPass * query_stride;
  const int64_t tail_bytes = kRowsPerStep * kRowBytes;
  const int64_t out_bytes = int64_t{kQueriesPerPass} * kPanelWidth * 4;
  const int64_t float_bytes = (int64_t{passes} * kQueriesPerPass * (P::kQueryParams + 1) * 4 + 63) / 64 * 64;
  uint8_t* scratch = static_cast<uint8_t*>(std::aligned_alloc(64, query_bytes + tail_bytes + out_bytes + float_bytes));
  if (scratch == nullptr) throw std::bad_alloc();
  uint8_t* qpack = scratch;
  uint8_t* tail = scratch + query_bytes;
  float* out = reinterpret_cast<float*>(tail + tail_bytes);
  float* thresholds = reinterpret_cast<float*>(tail + tail_bytes + out_bytes);
  float* params = thresholds + passes * kQueriesPerPass;

  // Padding queries and dimensions meet zero panel rows or zero queries: they add nothing.
  std::memset(qpack, 0, query_bytes);
  P::Pack(a, qpack, query_stride, params);
  if (a.raw_scores == nullptr && a.num_bins == 0)
    for (int i = 0; i < nq; ++i) thresholds[i] = HeapThreshold(a.states[i], a.k);

  const uint8_t* panels = static_cast<const uint8_t*>(a.panels);
  const int64_t panel_bytes = rows * kRowBytes;
  const int64_t full_steps = rows / kRowsPerStep;
  const int64_t tail_rows = rows - full_steps * kRowsPerStep;
  std::memset(tail, 0, tail_bytes);
  ConfigureTiles();
  for (int64_t p = a.panel_begin; p < a.panel_end; ++p) {
    const uint8_t* panel = panels + p * panel_bytes;
    // A partial last step is read from a zero-padded copy, never past the panel.
    if (tail_rows > 0) std::memcpy(tail, panel + full_steps * kRowsPerStep * kRowBytes, tail_rows * kRowBytes);
    const int64_t j0 = p * kPanelWidth;
    for (int pass = 0; pass < passes; ++pass) {
      const int q0 = pass * kQueriesPerPass;
      const int m = nq - q0 < kQueriesPerPass ? nq - q0 : kQueriesPerPass;
      const uint8_t* qa = qpack + int64_t{q0} * query_stride;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t s = 0; s < steps; ++s) {
        const uint8_t* b = s < full_steps ? panel + s * kRowsPerStep * kRowBytes : tail;
        _tile_loadd(6, b, kRowBytes);
        _tile_loadd(7, b + kRowBytes / 2, kRowBytes);
        _tile_loadd(4, qa + s * kStepBytes, query_stride);
        _tile_loadd(5, qa + 16 * query_stride + s * kStepBytes, query_stride);
        P::Dot();
      }
      constexpr int kOutStride = kPanelWidth * 4;  // bytes per query row of `out`
      _tile_stored(0, out, kOutStride);
      _tile_stored(1, out + 16, kOutStride);
      _tile_stored(2, out + 16 * kPanelWidth, kOutStride);
      _tile_stored(3, out + 16 * kPanelWidth + 16, kOutStride);
      P::Vector::Finish(m, out, params + int64_t{q0} * P::kQueryParams, j0, a);
      if (a.raw_scores != nullptr)
        StoreRaw(out, m, j0, a.bias + j0, a.raw_scores + int64_t{q0} * a.raw_stride, a.raw_stride);
      else
        Epilogue(out, m, j0, a.bias + j0, a.states + q0, a, thresholds + q0);
    }
  }
  _tile_release();
  std::free(scratch);
}

}  // namespace
}  // namespace isa_amx

bool AmxUsable() {
  static const bool usable = [] {
#if defined(__x86_64__)
    unsigned eax, ebx, ecx, edx;
    __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(0));
    const bool tile = (edx >> 24) & 1, bf16 = (edx >> 22) & 1;
    if (!tile || !bf16) return false;
    // Linux hands out the tile state only on request (once per process).
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return usable;
}

const DenseKernels& DenseKernelsAmx() {
  using namespace isa_amx;
  static const DenseKernels kernels{"avx512_bf16", {&Scan<TileF32>, &ScanAmx<AmxBf16>, &ScanAmx<AmxInt8>}, &Rescore};
  return kernels;
}

}  // namespace annlib
