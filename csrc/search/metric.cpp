#include "metric.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace annlib {

double SquaredNorm(const float* row, int32_t dim) {
  // Eight running sums: one serial sum waits on each add's latency (4x slower on d=384
  // queries, which every search checks). The order is fixed, so the result is too.
  double part[8] = {};
  int32_t t = 0;
  for (; t + 8 <= dim; t += 8)
    for (int j = 0; j < 8; ++j) part[j] += double{row[t + j]} * row[t + j];
  for (int j = 0; t < dim; ++t, ++j) part[j] += double{row[t]} * row[t];
  return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
}

Metric ParseMetric(const std::string& name) {
  if (name == "dot_product") return Metric::kDotProduct;
  if (name == "squared_l2") return Metric::kSquaredL2;
  if (name == "cosine") return Metric::kCosine;
  throw std::invalid_argument("distance_measure must be one of dot_product, squared_l2, cosine; got '" + name + "'");
}

const char* MetricName(Metric metric) {
  switch (metric) {
    case Metric::kDotProduct: return "dot_product";
    case Metric::kSquaredL2: return "squared_l2";
    case Metric::kCosine: return "cosine";
  }
  return "?";
}

namespace {

// Row i's squared norm, or std::invalid_argument saying what is wrong with it.
double CheckedSquaredNorm(const float* row, int64_t i, int32_t dim, Metric metric, const char* what) {
  const double norm2 = SquaredNorm(row, dim);
  if (std::isfinite(norm2) && norm2 <= std::numeric_limits<float>::max() && (metric != Metric::kCosine || norm2 > 0.0))
    return norm2;
  for (int32_t t = 0; t < dim; ++t)
    if (!std::isfinite(row[t]))
      throw std::invalid_argument(std::string(what) + " contains NaN or infinity (first in row " +
                                  std::to_string(i) + "); remove or impute those values");
  if (norm2 == 0.0)
    throw std::invalid_argument(std::string(what) + " row " + std::to_string(i) +
                                " is all zeros: cosine similarity is undefined for it");
  throw std::invalid_argument(std::string(what) +
                              " has values too large for float32 arithmetic (squared norm overflows); "
                              "rescale the data");
}

}  // namespace

void CheckRows(const float* x, int64_t n, int32_t dim, Metric metric, const char* what) {
  for (int64_t i = 0; i < n; ++i) CheckedSquaredNorm(x + i * dim, i, dim, metric, what);
}

const float* PrepareRows(const float* x, int64_t n, int32_t dim, Metric metric, const char* what,
                         std::vector<float>* normalized) {
  if (metric != Metric::kCosine) {
    CheckRows(x, n, dim, metric, what);
    return x;
  }
  // One pass: each row's norm checked, then used to scale it (the first bad row still
  // throws, and the scratch rows written before it are the caller's to drop).
  normalized->resize(n * dim);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * dim;
    const float norm = static_cast<float>(std::sqrt(CheckedSquaredNorm(row, i, dim, metric, what)));
    float* out = normalized->data() + i * dim;
    for (int32_t t = 0; t < dim; ++t) out[t] = row[t] / norm;
  }
  return normalized->data();
}

void RawToMetric(Metric metric, const float* queries, int64_t n, int32_t dim, float* scores, int32_t k) {
  if (metric != Metric::kSquaredL2) return;
  for (int64_t i = 0; i < n; ++i) {
    const float qnorm = static_cast<float>(SquaredNorm(queries + i * dim, dim));
    float* row = scores + i * k;
    for (int32_t j = 0; j < k; ++j) {
      const float d = qnorm - 2.0f * row[j];  // padding: -inf raw -> +inf
      row[j] = d > 0.0f ? d : 0.0f;
    }
  }
}

}  // namespace annlib
