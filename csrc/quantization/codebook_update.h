// The update step of per-block k-means for AH codebooks (16 centers per
// block): the sum and count of the residual blocks assigned to each center.
//
// One pass over the points in fixed chunks, each summed on its own in double,
// then the chunks added in order: the result does not depend on the number of
// threads.
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

}  // namespace annlib
