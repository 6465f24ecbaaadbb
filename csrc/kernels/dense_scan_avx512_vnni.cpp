// AVX-512 (F/BW/DQ/VL) dense scan kernels with VNNI's int8 dot products
// (vpdpbusd), for CPUs that have VNNI but not BF16 (Intel Cascade Lake, Ice
// Lake, Tiger Lake): the avx512 unit's kernels otherwise, built with
// -mavx512vnni and ANNLIB_AVX512_VNNI (ops_avx512-inl.h).
#include <immintrin.h>

#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#define ANNLIB_AVX512_VNNI 1

namespace annlib {
namespace isa_avx512_vnni {
namespace {
#include "ops_avx512-inl.h"
}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"
#include "row_select-inl.h"
#include "ah_encode-inl.h"

}  // namespace isa_avx512_vnni

const DenseKernels& DenseKernelsAvx512Vnni() {
  using namespace isa_avx512_vnni;
  static const DenseKernels table{"avx512_vnni", {&Scan<TileF32>, &Scan<TileBf16>, &Scan<TileInt8>}, &Rescore,
                                  {&AtMost, &Smallest, &LaneMaxima, &AtLeast}, &AhEncodePoint,
                                  nullptr, 0.0, 0, false, &ScorePointsF32, true};
  return table;
}

}  // namespace annlib
