// AVX2 + FMA dense scan kernels (compiled with -mavx2 -mfma -mf16c only).
#include <immintrin.h>

#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace annlib {
namespace isa_avx2 {
namespace {

#include "ops_avx2-inl.h"

}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"
#include "row_select-inl.h"
#include "ah_encode-inl.h"

}  // namespace isa_avx2

const DenseKernels& DenseKernelsAvx2() {
  static const DenseKernels table{"avx2",
                                  {&isa_avx2::Scan<isa_avx2::TileF32>,
                                   &isa_avx2::Scan<isa_avx2::TileBf16>,
                                   &isa_avx2::Scan<isa_avx2::TileInt8>},
                                  &isa_avx2::Rescore,
                                  {&isa_avx2::AtMost, &isa_avx2::Smallest, &isa_avx2::LaneMaxima, &isa_avx2::AtLeast},
                                  &isa_avx2::AhEncodePoint,
                                  nullptr, 0.0, 0, false, &isa_avx2::ScorePointsF32, true};
  return table;
}

}  // namespace annlib
