// Exact rescoring of candidate rows (the reorder stage), included by each
// dense scan unit after its Ops, which must also provide
//   float hsum(V);                       // sum of the lanes
//   V load_bf16(const uint16_t*);        // W bfloat16 values widened to float
//   V load_i8(const int8_t*);            // W int8 codes converted to float
// Rows are padded to a multiple of kRowAlign (>= W) elements, so no tails.

namespace {

template <class T, class Load>
inline float DotRow(const float* q, const T* x, int64_t stride, Load load) {
  typename Ops::V acc0 = Ops::zero(), acc1 = Ops::zero();
  int64_t t = 0;
  for (; t + 2 * Ops::W <= stride; t += 2 * Ops::W) {
    acc0 = Ops::fmadd(Ops::load(q + t), load(x + t), acc0);
    acc1 = Ops::fmadd(Ops::load(q + t + Ops::W), load(x + t + Ops::W), acc1);
  }
  for (; t < stride; t += Ops::W) acc0 = Ops::fmadd(Ops::load(q + t), load(x + t), acc0);
  return Ops::hsum(Ops::add(acc0, acc1));
}

template <class T, bool kMany, class Load>
inline void RescoreTyped(const annlib::RescoreArgs& a, Load load) {
  const T* rows = static_cast<const T*>(a.rows);
  const int64_t row_bytes = a.stride * int64_t{sizeof(T)};
  // Candidates' rows are random accesses, mostly from DRAM: each is fetched
  // into L2 far ahead, then into L1 (portable.h's schedule, its distances in
  // cache lines, whatever the row's type). A row's bias (and an
  // int8 row's scale and offset) sit in arrays of their own, a cache line
  // each at a random address too: fetched with the row, and counted. Against
  // 8 rows into L1 alone, on Zen 4: 200 float32 rows of d = 384 rescored
  // 1.5-1.6x faster, 30-40 rows 1.0-1.5x.
  const annlib::RowPrefetchDistances ahead =
      annlib::RowPrefetchFor((row_bytes + 63) / 64 + (a.type == annlib::DenseType::kInt8 ? 3 : 1));
  auto fetch = [&](int64_t r, bool to_l1) {
    const int64_t j = a.ids[r];
    const char* row = reinterpret_cast<const char*>(rows + j * a.stride);
    for (int64_t b = 0; b < row_bytes; b += 64) annlib::PrefetchInto(row + b, to_l1);
    annlib::PrefetchInto(a.bias + j, to_l1);
    if (a.type == annlib::DenseType::kInt8) {
      annlib::PrefetchInto(a.scale + j, to_l1);
      annlib::PrefetchInto(a.offset + j, to_l1);
    }
  };
  annlib::PrefetchFirstRows(ahead, a.count, fetch);
  for (int32_t i = 0; i < a.count; ++i) {
    annlib::PrefetchRowsAhead(ahead, i, a.count, fetch);
    const int64_t j = a.ids[i];
    // The same product, in the same order, whichever mode: bit-identical scores.
    const float* query = kMany ? a.queries + a.query_of[i] * a.stride : a.query;
    float dot = DotRow(query, rows + j * a.stride, a.stride, load);
    if (a.type == annlib::DenseType::kInt8)
      dot = a.scale[j] * dot + a.offset[j] * (kMany ? a.query_sums[a.query_of[i]] : a.query_sum);
    a.out[i] = dot + a.bias[j];
  }
}

}  // namespace

template <bool kMany>
inline void RescoreMode(const annlib::RescoreArgs& a) {
  switch (a.type) {
    case annlib::DenseType::kFloat32:
      RescoreTyped<float, kMany>(a, [](const float* p) { return Ops::load(p); });
      break;
    case annlib::DenseType::kBFloat16:
      RescoreTyped<uint16_t, kMany>(a, [](const uint16_t* p) { return Ops::load_bf16(p); });
      break;
    case annlib::DenseType::kInt8:
      RescoreTyped<int8_t, kMany>(a, [](const int8_t* p) { return Ops::load_i8(p); });
      break;
  }
}

inline void Rescore(const annlib::RescoreArgs& a) {
  if (a.query_of != nullptr) {
    RescoreMode<true>(a);
  } else {
    RescoreMode<false>(a);
  }
}
