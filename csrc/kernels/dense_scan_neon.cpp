// NEON dense scan kernels (AArch64, where NEON is baseline: no extra flags).
#include <arm_neon.h>

#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace annlib {
namespace isa_neon {
namespace {

#include "ops_neon-inl.h"

}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"
#include "row_select-inl.h"
#include "ah_encode-inl.h"

}  // namespace isa_neon

const DenseKernels& DenseKernelsNeon() {
  static const DenseKernels table{"neon",
                                  {&isa_neon::Scan<isa_neon::TileF32>,
                                   &isa_neon::Scan<isa_neon::TileBf16>,
                                   &isa_neon::Scan<isa_neon::TileInt8>},
                                  &isa_neon::Rescore,
                                  {&isa_neon::AtMost, &isa_neon::Smallest, &isa_neon::LaneMaxima, &isa_neon::AtLeast},
                                  &isa_neon::AhEncodePoint};
  return table;
}

}  // namespace annlib
