// NEON dense scan kernels with Armv8.2's int8 dot products (sdot), for AArch64
// CPUs that have them (Neoverse N1 and later, so every Graviton since the
// second; Apple M1 and later; Cortex-A76 and later): the neon unit's kernels
// otherwise, built with -march=armv8.2-a+dotprod and ANNLIB_NEON_DOTPROD
// (ops_neon-inl.h).
#include <arm_neon.h>

#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#define ANNLIB_NEON_DOTPROD 1

namespace annlib {
namespace isa_neon_dotprod {
namespace {
#include "ops_neon-inl.h"
}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"
#include "row_select-inl.h"
#include "ah_encode-inl.h"

}  // namespace isa_neon_dotprod

const DenseKernels& DenseKernelsNeonDotprod() {
  using namespace isa_neon_dotprod;
  static const DenseKernels table{"neon_dotprod", {&Scan<TileF32>, &Scan<TileBf16>, &Scan<TileInt8>}, &Rescore,
                                  {&AtMost, &Smallest, &LaneMaxima, &AtLeast}, &AhEncodePoint};
  return table;
}

}  // namespace annlib
