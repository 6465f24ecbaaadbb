// The document loop every MaxSim kernel shares. Included inside an anonymous
// namespace of each maxsim_<isa>.cpp after that unit defines
//   void WidenRow(const MaxSimArgs& a, int64_t token, float* out)
//       token's row as float32, zero padded to a.padded_dim
//   void TileMax(const float* q, const float* d, int32_t padded_dim, float* best)
//       best[i] = max(best[i], max_j <q_i, d_j>) for 4 query rows q (stride
//       padded_dim) and 4 document rows d (same stride)

void MaxSimDocs(const MaxSimArgs& a) {
  const int32_t pd = a.padded_dim;
  float* rows = a.scratch;
  float* best = a.scratch + int64_t{kMaxSimDocBlock} * pd;
  for (int64_t c = 0; c < a.count; ++c) {
    const int64_t doc = a.doc_ids[c];
    const int64_t begin = a.offsets[doc], end = a.offsets[doc + 1];
    for (int32_t i = 0; i < a.query_rows; ++i) best[i] = -std::numeric_limits<float>::infinity();
    for (int64_t t0 = begin; t0 < end; t0 += kMaxSimDocBlock) {
      const int32_t nb = static_cast<int32_t>(end - t0 < kMaxSimDocBlock ? end - t0 : kMaxSimDocBlock);
      for (int32_t j = 0; j < nb; ++j) WidenRow(a, t0 + j, rows + int64_t{j} * pd);
      // Pad to whole tiles by repeating the last row: a repeat cannot change a max.
      const int32_t padded = (nb + kMaxSimTile - 1) / kMaxSimTile * kMaxSimTile;
      for (int32_t j = nb; j < padded; ++j)
        for (int32_t t = 0; t < pd; ++t) rows[int64_t{j} * pd + t] = rows[int64_t{nb - 1} * pd + t];
      for (int32_t qi = 0; qi < a.query_rows; qi += kMaxSimTile)
        for (int32_t dj = 0; dj < padded; dj += kMaxSimTile)
          TileMax(a.query + int64_t{qi} * pd, rows + int64_t{dj} * pd, pd, best + qi);
    }
    float sum = 0.0f;
    for (int32_t i = 0; i < a.num_query_tokens; ++i) sum += best[i];
    a.out[c] = sum;
  }
}
