// The distance measures at the engine's edge: what happens to query (and
// database) rows before the kernels see them, and to raw scores after.
//
// Every kernel maximises a raw score <q, x> + bias. The three measures map to
// it as follows:
//   dot_product  raw = <q, x>                            returned as is
//   cosine       rows normalised to unit length first    returned as is
//   squared_l2   raw = <q, x> - |x|^2/2 (bias)           returned as |q|^2 - 2 raw
// Rows must be finite with a finite squared norm (scores are built from it),
// and cosine rows nonzero; CheckRows' messages say how to fix the call.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace annlib {

enum class Metric : int { kDotProduct = 0, kSquaredL2 = 1, kCosine = 2 };

// "dot_product", "squared_l2" or "cosine"; throws std::invalid_argument.
Metric ParseMetric(const std::string& name);
const char* MetricName(Metric metric);

// The sum of row[t]^2 in double, added in one fixed order (the same value wherever used).
double SquaredNorm(const float* row, int32_t dim);

// Throws std::invalid_argument naming the first bad row of x [n][dim]: a NaN
// or infinity, a squared norm that overflows float32, or (cosine) a zero row.
// `what` names the rows in the message ("query", "database", ...).
void CheckRows(const float* x, int64_t n, int32_t dim, Metric metric, const char* what);

// The rows the kernels score, checked: x itself, or (cosine) the rows
// normalised into `normalized`, which is resized.
const float* PrepareRows(const float* x, int64_t n, int32_t dim, Metric metric, const char* what,
                         std::vector<float>* normalized);

// Raw scores [n][k] of the prepared queries [n][dim] -> the measure's scores,
// in place: squared L2 becomes |q|^2 - 2 raw (|q|^2 summed in double), at
// least 0, padding (-inf) +inf; the others are unchanged.
void RawToMetric(Metric metric, const float* queries, int64_t n, int32_t dim, float* scores, int32_t k);

}  // namespace annlib
