// AVX-512 (F/BW/DQ/VL) dense scan kernels, compiled with those flags only.
#include <immintrin.h>

#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace annlib {
namespace isa_avx512 {
namespace {
#include "ops_avx512-inl.h"
}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"
#include "row_select-inl.h"
#include "ah_encode-inl.h"

}  // namespace isa_avx512

const DenseKernels& DenseKernelsAvx512() {
  static const DenseKernels table{"avx512",
                                  {&isa_avx512::Scan<isa_avx512::TileF32>,
                                   &isa_avx512::Scan<isa_avx512::TileBf16>,
                                   &isa_avx512::Scan<isa_avx512::TileInt8>},
                                  &isa_avx512::Rescore,
                                  {&isa_avx512::AtMost, &isa_avx512::Smallest, &isa_avx512::LaneMaxima, &isa_avx512::AtLeast},
                                  &isa_avx512::AhEncodePoint,
                                  nullptr, 0.0, 0, false, &isa_avx512::ScorePointsF32, true};
  return table;
}

}  // namespace annlib
