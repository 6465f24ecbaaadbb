// Checks of an index's arrays as the engine reads them (index_format.h): each
// throws std::invalid_argument naming the array, so a damaged or hostile file
// is refused with a message instead of read out of bounds.
#pragma once
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "index_format.h"

namespace annlib {

constexpr int64_t kMaxRows = (int64_t{1} << 31) - 64;  // rows are int32 in the kernels
constexpr int64_t kMaxDim = int64_t{1} << 24;

template <class T>
const T* RequireLength(const char* name, const Span<T>& a, int64_t length) {
  if (!a.present()) throw std::invalid_argument(std::string("missing array '") + name + "'");
  if (a.size != length)
    throw std::invalid_argument(std::string("array '") + name + "' has " + std::to_string(a.size) +
                                " elements, expected " + std::to_string(length));
  return a.data;
}

inline const void* RequireBytes(const char* name, const Bytes& a, int64_t bytes) {
  if (!a.present()) throw std::invalid_argument(std::string("missing array '") + name + "'");
  if (a.size != bytes)
    throw std::invalid_argument(std::string("array '") + name + "' has " + std::to_string(a.size) +
                                " bytes, expected " + std::to_string(bytes));
  return a.data;
}

// A float array of exactly `length` entries, none NaN or infinite (the small
// arrays: NaN there would poison every score silently).
template <class T>
const T* RequireFinite(const char* name, const Span<T>& a, int64_t length) {
  const T* p = RequireLength(name, a, length);
  for (int64_t i = 0; i < length; ++i)
    if (!std::isfinite(p[i])) throw std::invalid_argument(std::string("array '") + name + "' holds NaN or infinity");
  return p;
}

// A per-point float array padded to whole panels: finite for the first
// `points`, then -inf (a padding bias, never returned) or finite.
inline const float* RequirePanelFloats(const char* name, const Span<float>& a, int64_t length, int64_t points) {
  const float* p = RequireLength(name, a, length);
  for (int64_t i = 0; i < length; ++i)
    if (std::isnan(p[i]) || p[i] == INFINITY || (i < points && !std::isfinite(p[i])))
      throw std::invalid_argument(std::string("array '") + name + "' holds NaN or infinity");
  return p;
}

}  // namespace annlib
