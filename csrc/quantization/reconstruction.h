// Squared norms of points as their AH codes reconstruct them: |c[leaf] + r~|^2,
// r~ the codewords of the point's codes, one per block. Squared L2 scans add
// (|c|^2 - |x~|^2) / 2 per code slot (quantized/placement.py, l2_point_term).
#pragma once
#include <cstdint>

namespace annlib {

struct ReconstructedNormArgs {
  const float* centers;     // [num_centers][num_blocks * dims_per_block]
  int64_t num_centers;
  const int64_t* leaves;    // [n] the center each row's codes are relative to
  const uint8_t* codes;     // [n][num_blocks], values 0..15
  int64_t n;
  int32_t num_blocks;
  int32_t dims_per_block;
  const float* codebooks;   // [num_blocks][16][dims_per_block]
  double* out;              // [n]
};

// Each entry of x~ in float32 (center + codeword), squared and summed in double.
// Throws std::invalid_argument if a leaf is out of range or a code not below 16.
void ReconstructedNorm2(const ReconstructedNormArgs& args, int num_threads);

}  // namespace annlib
