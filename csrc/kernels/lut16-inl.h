// Shared tail of the LUT16 kernels, included in each ISA unit's anonymous
// namespace: turns a group's 32 integer totals into approximate scores and
// feeds the survivors to the heap. The caller has widened the totals to int32
// in natural point order.

#include "select-inl.h"

inline void Lut16Select(const annlib::Lut16Args& a, int64_t group, const int32_t* totals) {
  SelectState& st = *a.state;
  const int64_t first = group * annlib::kLut16Group;
  int64_t count = a.num_points - first;
  if (count > annlib::kLut16Group) count = annlib::kLut16Group;
  float threshold = HeapThreshold(st, a.k);
  for (int64_t i = 0; i < count; ++i) {
    float score = a.inv_scale * static_cast<float>(totals[i]) + a.base;
    if (a.point_bias != nullptr) score += a.point_bias[first + i];
    if (score > threshold) {
      HeapPush(st, a.k, score, a.ids[first + i]);
      threshold = HeapThreshold(st, a.k);
    }
  }
}
