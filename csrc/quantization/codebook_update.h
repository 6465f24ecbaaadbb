// Update steps of k-means: per block for the AH codebooks (BlockCenterSums),
// and over the leaves (CenterSums): the sum and count of what each center was
// assigned. Neither result depends on the number of threads.
//
// BlockCenterSums: one pass over the points in fixed chunks, each summed on its
// own in double, then the chunks added in order.
#pragma once
#include <cstdint>

namespace annlib {

struct BlockCenterSumsArgs {
  const float* x;          // [n][num_blocks * dims_per_block]
  const uint8_t* codes;    // [n][num_blocks], values 0..15
  int64_t n;
  int32_t num_blocks;
  int32_t dims_per_block;
  double* sums;            // out: [num_blocks][16][dims_per_block]
  int64_t* counts;         // out: [num_blocks][16]
};

// Throws std::invalid_argument if a code is not below 16.
void BlockCenterSums(const BlockCenterSumsArgs& args, int num_threads);

// The update step of k-means over the leaves: each center's count of rows and
// their sum, added in float32 in row order (the sums a one-hot sparse product
// in float32 gives, bit for bit), the centers split over threads.
struct CenterSumsArgs {
  const float* x;          // [n][dim]
  const int64_t* labels;   // [n], each in [0, num_centers)
  int64_t n;
  int32_t dim;
  int64_t num_centers;
  float* sums;             // out: [num_centers][dim]
  int64_t* counts;         // out: [num_centers]
};

// Throws std::invalid_argument if a label is out of range.
void CenterSums(const CenterSumsArgs& args, int num_threads);

}  // namespace annlib
