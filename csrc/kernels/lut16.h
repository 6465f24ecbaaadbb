// LUT16 scan: asymmetric-hashing scores of 4-bit product-quantization codes
// looked up in per-query tables held in SIMD registers (pshufb).
//
// Code layout ("packed codes"): points in groups of 32; for each group and
// each block b (num_blocks padded to a multiple of 4 with zero codes), 16
// bytes whose byte i holds code(point i) in the low nibble and
// code(point i + 16) in the high nibble: [group][block][16] uint8.
//
// Table: lut[block][16] uint8, the query's per-block scores quantised with
// one scale after subtracting each block's minimum, so that
//   approx score(point) = inv_scale * sum_b lut[b][code_b(point)] + base
//                         + point_bias[point]           (point_bias optional)
// Sums are accumulated in 16-bit lanes and widened every 256 blocks.
#pragma once
#include <cstdint>

#include "../util/portable.h"
#include "candidates.h"

namespace annlib {

constexpr int kLut16Group = 32;
constexpr int kLut16BlockAlign = 4;

struct Lut16Args {
  const uint8_t* codes;      // packed codes of one list of points
  int64_t num_points;        // points in the list (groups = ceil(num_points / 32))
  int32_t num_blocks;        // multiple of kLut16BlockAlign
  const uint8_t* lut;        // [num_blocks][16]
  float inv_scale;
  float base;
  const float* point_bias;   // [groups * 32] (a slot for padding lanes too) or nullptr
  const int32_t* ids;        // [groups * 32] id of each point; < 0 = empty slot, never returned
  CandidateBuffer* candidates;  // shared across the lists one query scans
  // Filter: bit id of allowed[] says whether point id may be returned
  // (nullptr = every point). Only survivors of the threshold test look it up.
  const uint64_t* allowed = nullptr;
};

using Lut16ScanFn = void (*)(const Lut16Args&);

// Several queries over the same list of points: queries[j] share codes,
// num_points, num_blocks, point_bias and ids, and each has its own lut,
// inv_scale, base and candidates. Each code register is loaded and split into
// nibbles once for all of them (the batched search scans a leaf for every
// query of a batch that probes it). Results are exactly those of `count`
// single-query scans.
constexpr int kLut16MaxQueries = 4;
using Lut16ScanMultiFn = void (*)(const Lut16Args* queries, int count);

// A query's table: lut[b][j] = <q_b, center_bj>, quantised to uint8 with one
// scale (255 over the widest block range) after subtracting each block's
// minimum, as QuantizeLut16 does (quantization/lut16_tables.h).
struct Lut16BuildArgs {
  const float* query;        // [num_blocks * dims_per_block]
  const float* centers;      // [num_blocks][dims_per_block][16]
  int32_t num_blocks;
  int32_t dims_per_block;
  float* scratch;            // [num_blocks * 17] floats
  uint8_t* table;            // out: [PaddedBlocks(num_blocks)][16]
  float* inv_scale;          // out
  float* base;               // out: sum of the block minima
};

using Lut16BuildFn = void (*)(const Lut16BuildArgs&);

// Scores every point of the list and appends those at or above the buffer's
// threshold (compacting it when full); call CompactCandidates after the last
// list. Defined in kernels/lut16_<isa>.cpp; the Vbmi ones (AVX-512 with VBMI
// and VNNI) serve the avx512_bf16 level where the CPU has both.
void Lut16ScanScalar(const Lut16Args& a);
void Lut16ScanNeon(const Lut16Args& a);
void Lut16ScanAvx2(const Lut16Args& a);
void Lut16ScanAvx512(const Lut16Args& a);
void Lut16ScanAvx512Vbmi(const Lut16Args& a);  // AVX-512 + VBMI + VNNI
void Lut16ScanMultiScalar(const Lut16Args* queries, int count);
void Lut16ScanMultiNeon(const Lut16Args* queries, int count);
void Lut16ScanMultiAvx2(const Lut16Args* queries, int count);
void Lut16ScanMultiAvx512(const Lut16Args* queries, int count);
void Lut16ScanMultiAvx512Vbmi(const Lut16Args* queries, int count);
void Lut16BuildScalar(const Lut16BuildArgs& a);
void Lut16BuildNeon(const Lut16BuildArgs& a);
void Lut16BuildAvx2(const Lut16BuildArgs& a);
void Lut16BuildAvx512(const Lut16BuildArgs& a);

}  // namespace annlib
