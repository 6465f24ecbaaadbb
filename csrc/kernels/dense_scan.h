// Interface between the brute-force driver (baseline code) and the ISA-specific
// dense scan kernels. Plain structs and function pointers only: ISA translation
// units must not share inline STL code with baseline callers.
//
// Database layout ("panels"): points are grouped 32 to a panel; panel p holds
// points 32p..32p+31. Inside a panel the values are dimension-major so that one
// SIMD load fetches the same dimension (or dimension pair / quad) of 16 points:
//   float32  : [panel][d]           [32] float
//   bfloat16 : [panel][ceil(d/2)]   [32][2] uint16   (pairs of dimensions)
//   int8     : [panel][ceil(d/4)]   [32][4] int8     (quads of dimensions)
// Every layout is a stack of 128-byte "rows" (32 lanes x 4 bytes), so a panel
// of G = ceil(d / dims_per_row) rows can be scanned in row slices (K-blocking).
// Padding (points past n, dimensions past d) is zero. Every point has a float
// bias added to its score (0 for dot product, -|x|^2/2 for squared L2, -inf for
// padding points), so the kernel always maximises  <q, x> + bias.
//
// int8 is affine per point: x ~= scale * code + offset with codes in
// [-127, 127]; `sums` holds the sum of a point's codes and `scaled_sums` that
// sum times its scale. Queries are quantised the same way, per query.
#pragma once
#include <cstdint>

#include "../util/portable.h"
#include "candidates.h"

namespace annlib {

constexpr int kPanelWidth = 32;

enum class DenseType : int { kFloat32 = 0, kBFloat16 = 1, kInt8 = 2 };

// Per-query selection state, owned by the caller.
//  exact mode (num_bins == 0): a binary min-heap of `capacity` = k entries,
//      `size` filled; the root is the current k-th best score.
//  binned mode (num_bins = L > 0): `capacity` = L + kPanelWidth slots; slot s
//      keeps the best (score, id) seen for bin (s mod L). Slots >= L absorb the
//      wrap-around of one vector and are folded back by the caller.
struct SelectState {
  float* scores;
  int32_t* ids;
  int32_t size;
};

struct ScanArgs {
  const void* panels;      // database panels (layout above)
  const float* bias;       // [n_panels * 32]
  const float* scale;      // int8 only: per-point scale
  const float* offset;     // int8 only: per-point offset
  const int32_t* sums;     // int8 only: per-point sum of codes
  const float* scaled_sums;  // int8 only: scale * sums
  int32_t dim;             // logical dimension d
  int64_t panel_begin;     // half-open range of panels to scan
  int64_t panel_end;
  const float* queries;    // [num_queries][dim], row-major
  int32_t num_queries;
  int32_t k;
  int32_t num_bins;        // 0 = exact top-k
  SelectState* states;     // [num_queries]
  // Raw mode (no selection): when set, score + bias of query i and point j is
  // written to raw_scores[i * raw_stride + j] for every point of the range
  // (padding points included), and states/k/num_bins are ignored.
  float* raw_scores = nullptr;
  int64_t raw_stride = 0;
  // Filter: bit j of allowed[] says whether point j may be selected
  // (nullptr = every point); consulted by the selection epilogue.
  const uint64_t* allowed = nullptr;
};

using ScanFn = void (*)(const ScanArgs&);

// Row-major copy of the data for exact rescoring (reordering): one row per
// point, padded with zeros to a multiple of kRowAlign elements, so that a
// candidate's values share a few cache lines instead of a panel's 32 rows.
constexpr int kRowAlign = 16;

struct RescoreArgs {
  DenseType type;
  const void* rows;        // [n][stride] float32, bfloat16 (uint16) or int8 codes
  int64_t stride;          // elements per row, a multiple of kRowAlign
  const float* bias;       // [n] added to every score (0, or -|x|^2/2 for L2)
  const float* scale;      // int8 only: x ~= scale * code + offset, per point
  const float* offset;
  const float* query;      // [stride] float32, zero padded
  float query_sum;         // int8 only: sum of the query's entries
  const int32_t* ids;      // [count] rows to score
  int32_t count;
  float* out;              // [count] <q, x> + bias
  // Many queries at once (query and query_sum unused): row ids[i] is scored
  // against query query_of[i] of queries [nq][stride] (zero padded), whose
  // sum is query_sums[query_of[i]] (int8 only). nullptr: one query.
  const int32_t* query_of = nullptr;
  const float* queries = nullptr;
  const float* query_sums = nullptr;
};

using RescoreFn = void (*)(const RescoreArgs&);

// Float32 scores of chosen points read from their panels (float32 layout),
// in place: points[i].score = <query, x_points[i].id> + bias[points[i].id].
struct PointScoreArgs {
  const float* panels;
  const float* bias;
  int32_t dim;
  const float* query;      // [dim]
  Candidate* points;       // [count]
  int32_t count;
};

using PointScoreFn = void (*)(const PointScoreArgs&);

// One point's 4-bit AH codes (kernels/ah_encode-inl.h; the loss is in
// quantization/ah_encode.h): each block's nearest of its 16 centers, then,
// where w > 0, coordinate descent on |e|^2 + w <e, x>^2 (w = (eta - 1) / |x|^2).
// The caller owns the scratch.
struct AhEncodePointArgs {
  const float* residual;    // [num_blocks * dims_per_block]: r = x - its leaf center
  const float* original;    // [num_blocks * dims_per_block]: x
  const float* centers_t;   // [num_blocks][dims_per_block][16]: the centers, transposed
  int32_t num_blocks;
  int32_t dims_per_block;
  double w;                 // >= 0; 0: nearest centers only
  int32_t max_rounds;       // coordinate-descent rounds at most
  uint8_t* code;            // out: [num_blocks], values 0..15
  float* dist;              // scratch: [num_blocks * 16]
  float* proj;              // scratch: [num_blocks * 16]
  uint32_t* keys;           // scratch: [2 * num_blocks]
  int32_t* order;           // scratch: [2 * num_blocks]
};

using AhEncodePointFn = void (*)(const AhEncodePointArgs&);

// One row per SIMD level; filled by each ISA translation unit.
struct DenseKernels {
  const char* level_name;
  ScanFn scan[3];  // indexed by DenseType
  RescoreFn rescore;
  // Selections over one row of scores (kernels/row_select-inl.h).
  struct RowSelect {
    int32_t (*at_most)(const float* values, int32_t n, float bound, int32_t* out);
    int32_t (*smallest)(const float* values, int32_t n, int32_t k, int32_t* out);
    void (*lane_maxima)(const float* values, int32_t n, int32_t lanes, float* maxima);
    int32_t (*at_least)(const float* values, int32_t n, float bound, Candidate* out);
  } row_select;
  AhEncodePointFn ah_encode_point;  // kernels/ah_encode-inl.h
  // Binned float32 search, when set: a cheaper scan whose approximate scores
  // only choose each bin's winner (AMX: panels split into bf16 hi + lo parts
  // on the fly, three tile products; AVX-512 BF16 on AMD: panels rounded to
  // bf16 pairs, one vdpbf16ps product); the driver rescores the winners exactly.
  // nullptr: scan[kFloat32] is used.
  ScanFn screen_f32 = nullptr;
  // The screen's error per product, relative to |q_i x_i| (float32 sums
  // aside), which bounds which winners can still make the top k.
  double screen_error = 0.0;
  // Query blocks smaller than this scan float32: converting a panel costs as
  // much as screening this many queries on it.
  int32_t screen_min_queries = 0;
  // The screen multiplies bf16-rounded queries and points (one product), so
  // its error is at most |q| |x - bf16(x)| + |q - bf16(q)| |bf16(x)| plus
  // float32 sums (used where DenseView::bf16_residuals is set).
  bool screen_rounds_to_bf16 = false;
  // Set with screen_f32: the winners' exact scores, bit-identical to
  // scan[kFloat32]'s (same fused multiply-adds in the same order), so a
  // screened batch and an unscreened single query score a point alike.
  PointScoreFn score_points_f32 = nullptr;
  // Binned float32 search may choose bin winners by scanning an int8 copy of
  // the data with scan[kInt8] (DenseView::int8_copy), the winners rescored by
  // score_points_f32 (set with it): a quarter of float32's bytes, no conversion
  // per scan. Set on the x86 levels, where it beat float32 bins in every cell
  // measured (SIFT and words on Zen 4, 1 to 512 queries: 1.04-5.0x float32
  // bins at AVX2, 1.3-4.9x at AVX-512 without VNNI, more with VNNI; on a Xeon
  // with AMX, 1 to 2,000 queries: 2.9-7.0x exact, where AMX's bf16x3 screen
  // gave 1.0-2.6x); unmeasured on NEON, slower in scalar code.
  bool int8_screen = false;
};

// Defined in kernels/dense_scan_<isa>.cpp; each ISA unit is compiled only for its
// architecture (setup.py), and only simd/dispatch.cpp names them (simd/arch.h guards).
const DenseKernels& DenseKernelsScalar();
const DenseKernels& DenseKernelsNeon();
// NEON with Armv8.2's int8 dot products (the neon_dotprod level).
const DenseKernels& DenseKernelsNeonDotprod();
const DenseKernels& DenseKernelsAvx2();
// AVX2 with AVX-VNNI's int8 dot products (the avx2_vnni level: Intel client cores without AVX-512).
const DenseKernels& DenseKernelsAvx2Vnni();
const DenseKernels& DenseKernelsAvx512();
// AVX-512 with VNNI's int8 dot products (the avx512_vnni level: VNNI, no BF16).
const DenseKernels& DenseKernelsAvx512Vnni();
// native_bf16: vdpbf16ps on a bf16-rounded query (fast on AMD Zen 4/5); else
// bf16 widened to float32 and FMA (faster on Intel Sapphire Rapids).
const DenseKernels& DenseKernelsAvx512Bf16(bool native_bf16);
// The avx512_bf16 kernels with bfloat16 and int8 scans on AMX tiles (kernels/dense_scan_amx.cpp).
const DenseKernels& DenseKernelsAmx();
// Whether this CPU has AMX-BF16, the OS granted this process the tile state, and
// ANNLIB_DISABLE_AMX is unset (simd/dispatch.cpp; false off x86-64 Linux).
bool AmxUsable();

}  // namespace annlib
