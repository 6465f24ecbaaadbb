// Anisotropic (score-aware) product-quantization encoding (Guo et al., ICML
// 2020; docs/algorithms.md, section 2).
//
// A vector r (a residual: datapoint minus its leaf center) is split into
// num_blocks blocks of dims_per_block dimensions; each block is replaced by
// one of 16 centers. With e = r - r~ the quantization error and x the
// original datapoint, the encoder minimizes
//     eta * ||e_par||^2 + ||e_perp||^2  =  ||e||^2 + (eta - 1) * <e, x>^2 / ||x||^2
// where eta = max(1, (d - 1) * t^2 / (1 - t^2)), t = threshold / ||x||. threshold <= 0
// means plain product quantization (each block's nearest center).
#pragma once
#include <cstdint>

#include "../kernels/dense_scan.h"

namespace annlib {

struct AhEncodeArgs {
  const float* residuals;   // [n][num_blocks * dims_per_block]
  const float* originals;   // [n][num_blocks * dims_per_block]; the direction of x
  int64_t n;
  int32_t num_blocks;
  int32_t dims_per_block;
  const float* centers;     // [num_blocks][16][dims_per_block]
  float threshold;          // T in the units of x; <= 0: plain nearest-center encoding
  int32_t eta_dim;          // d in the eta formula (the data's dimension)
  int32_t max_rounds;       // coordinate-descent rounds (ScaNN uses up to 10)
  uint8_t* codes;           // out: [n][num_blocks], values 0..15
  // Set together, for copies of stored points (a build's placement): row i is
  // originals[points[i]], its residual that row minus leaf_centers[leaves[i]]
  // (float32, as numpy subtracts), and `residuals` is unused.
  const int64_t* points = nullptr;
  const float* leaf_centers = nullptr;  // [*][num_blocks * dims_per_block]
  const int64_t* leaves = nullptr;
};

// eta for a datapoint of squared norm norm2 (1 when the threshold is unset).
double AnisotropicEta(double threshold, double norm2, int32_t eta_dim);

// The codes of every row, by `kernels`' encoder (the same codes at every level).
void AhEncode(const AhEncodeArgs& args, const DenseKernels& kernels, int num_threads);

}  // namespace annlib
