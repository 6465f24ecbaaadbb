// SOAR spill assignment (Sun et al., NeurIPS 2023; docs/algorithms.md, section 4).
//
// Every point x with primary center c_p (residual r = x - c_p, r^ = r/|r|)
// is also stored in the leaf of
//     argmin_c  |x - c|^2 + lambda * <x - c, r^>^2
// which favours centers whose residual is orthogonal to r: a query parallel
// to r, badly served by the primary leaf, finds the point there instead.
// The argmin runs over every center, the primary included; when it is the
// primary the point is not spilled.
//
// With s1 = <x, c>, s2 = <r^, c>, a = <x, r^>, dropping the constant |x|^2:
//     loss(c) = |c|^2 - 2 s1 + lambda * (a - s2)^2
// The first two terms, e(c), are the squared distance less |x|^2: one GEMM of
// the points over the centers (our dense kernels in raw mode) gives them all,
// and the nearest center with them, so a build finds both leaves in one pass.
#pragma once
#include <cstdint>

#include "../search/dense_search.h"

namespace annlib {

struct SoarArgs {
  const float* x;             // [n][dim] datapoints
  int64_t n;
  const float* centers;       // [num_centers][dim], row-major
  DenseView center_panels;    // the same centers packed as float32 panels for squared L2
                              // (bias -|c|^2/2, as an exact float32 search packs them)
  const int64_t* primary;     // [n] primary center of each point; nullptr: each point's
                              // nearest center, found here and written to nearest
  float lambda;               // >= 0
  int32_t* secondary;         // out: [n] spill center (== primary: not spilled)
  int32_t* nearest = nullptr;  // out: [n] nearest center, when primary is nullptr
};

void SoarAssign(const SoarArgs& args, const DenseKernels& kernels, int num_threads);

}  // namespace annlib
