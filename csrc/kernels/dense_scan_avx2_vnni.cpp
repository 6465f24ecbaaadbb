// AVX2 dense scan kernels with AVX-VNNI's int8 dot products (vpdpbusd on 256
// bits), for CPUs that have AVX-VNNI but not AVX-512 (Intel Alder Lake and
// later client cores, Sierra Forest): the avx2 unit's kernels otherwise, built
// with -mavxvnni and ANNLIB_AVX_VNNI (ops_avx2-inl.h).
#include <immintrin.h>

#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#define ANNLIB_AVX_VNNI 1

namespace annlib {
namespace isa_avx2_vnni {
namespace {
#include "ops_avx2-inl.h"
}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"
#include "row_select-inl.h"
#include "ah_encode-inl.h"

}  // namespace isa_avx2_vnni

const DenseKernels& DenseKernelsAvx2Vnni() {
  using namespace isa_avx2_vnni;
  static const DenseKernels table{"avx2_vnni", {&Scan<TileF32>, &Scan<TileBf16>, &Scan<TileInt8>}, &Rescore,
                                  {&AtMost, &Smallest, &LaneMaxima, &AtLeast}, &AhEncodePoint,
                                  nullptr, 0.0, 0, false, &ScorePointsF32, true};
  return table;
}

}  // namespace annlib
