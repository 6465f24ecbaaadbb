// Scalar dense scan kernels: built with the baseline flags only; the reference
// every wider level is tested against.
#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace annlib {
namespace isa_scalar {
namespace {

struct Ops {
  static constexpr int W = 1;
  static constexpr int kInt8QueryOffset = 0;
  using V = float;
  using VI = int32_t;
  using XI = const int8_t*;
  static V zero() { return 0.0f; }
  static V load(const float* p) { return *p; }
  static V set1(float x) { return x; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V min(V a, V b) { return b < a ? b : a; }
  static V max(V a, V b) { return b > a ? b : a; }
  static V mul(V a, V b) { return a * b; }
  static V fmadd(V a, V b, V c) { return a * b + c; }
  static void store(float* p, V v) { *p = v; }
  // Lanes of mask: scores[l] = s[l], ids[l] = first_id + l (binned selection's bin slots).
  static void store_winners(float* scores, int32_t* ids, uint32_t mask, V s, int32_t first_id) {
    if (mask & 1u) {
      scores[0] = s;
      ids[0] = first_id;
    }
  }
  static uint32_t gt_mask(V a, V b) { return a > b ? 1u : 0u; }
  static V bits_to_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
  static void bf16_pair(const uint16_t* p, V& even, V& odd) {
    even = bits_to_float(uint32_t{p[0]} << 16);
    odd = bits_to_float(uint32_t{p[1]} << 16);
  }
  static VI zero_i() { return 0; }
  static VI load_i(const int32_t* p) { return *p; }
  static VI sub_i(VI a, VI b) { return a - b; }
  static VI shl7_i(VI a) { return a * 128; }
  static VI set1_i(int32_t q) { return q; }
  static XI load_x(const int8_t* x) { return x; }
  static VI dot4(VI acc, VI q, XI x) {
    for (int h = 0; h < 4; ++h) acc += static_cast<int8_t>((static_cast<uint32_t>(q) >> (8 * h)) & 0xFF) * x[h];
    return acc;
  }
  static V to_float(VI a) { return static_cast<float>(a); }
  static float hsum(V v) { return v; }
  static V load_bf16(const uint16_t* p) { return bits_to_float(uint32_t{*p} << 16); }
  static V load_i8(const int8_t* p) { return static_cast<float>(*p); }
};

constexpr int kMR = 2;
constexpr int kTileWidth = 16;

}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"
#include "row_select-inl.h"
#include "ah_encode-inl.h"

}  // namespace isa_scalar

const DenseKernels& DenseKernelsScalar() {
  static const DenseKernels table{"scalar",
                                  {&isa_scalar::Scan<isa_scalar::TileF32>,
                                   &isa_scalar::Scan<isa_scalar::TileBf16>,
                                   &isa_scalar::Scan<isa_scalar::TileInt8>},
                                  &isa_scalar::Rescore,
                                  {&isa_scalar::AtMost, &isa_scalar::Smallest, &isa_scalar::LaneMaxima, &isa_scalar::AtLeast},
                                  &isa_scalar::AhEncodePoint};
  return table;
}

}  // namespace annlib
