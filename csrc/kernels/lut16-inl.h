// Shared tail of the LUT16 kernels, included in each ISA unit's anonymous
// namespace: feeds a group's surviving points to the candidate buffer. The
// caller has computed the 32 approximate scores (natural point order) and a
// bit mask of those at or above the threshold at the start of the group.

inline void Lut16Select(const annlib::Lut16Args& a, int64_t group, const float* scores, uint32_t mask) {
  annlib::CandidateBuffer& buf = *a.candidates;
  const int64_t first = group * annlib::kLut16Group;
  while (mask != 0) {
    const int i = annlib::LowestBit32(mask);
    mask &= mask - 1;
    if (first + i >= a.num_points) break;  // padding lanes come last
    const int32_t id = a.ids[first + i];
    if (id < 0) continue;  // an empty slot (a leaf's padding, a deleted point)
    if (a.allowed != nullptr && !((a.allowed[id >> 6] >> (id & 63)) & 1)) continue;  // filtered out
    if (scores[i] < buf.threshold) continue;  // it rose since the mask was made
    if (buf.size == buf.capacity) {
      annlib::MakeRoom(buf);
      if (scores[i] < buf.threshold) continue;
    }
    buf.entries[buf.size++] = annlib::Candidate{scores[i], id};
  }
}

// Zeroes the table's padding blocks and writes the scale and base.
inline void Lut16FinishBuild(const annlib::Lut16BuildArgs& a, float scale, double total_min) {
  const int32_t padded = (a.num_blocks + annlib::kLut16BlockAlign - 1) / annlib::kLut16BlockAlign *
                         annlib::kLut16BlockAlign;
  for (int32_t b = a.num_blocks; b < padded; ++b)
    for (int j = 0; j < 16; ++j) a.table[b * 16 + j] = 0;
  *a.inv_scale = 1.0f / scale;
  *a.base = static_cast<float>(total_min);
}

inline float Lut16Scale(float widest) { return widest > 0.0f ? 255.0f / widest : 1.0f; }

// Scalar scoring of a group's totals (used by the scalar unit).
inline uint32_t Lut16ScoreScalar(const annlib::Lut16Args& a, int64_t group, const int32_t* totals, float* scores) {
  const int64_t first = group * annlib::kLut16Group;
  const float threshold = a.candidates->threshold;
  uint32_t mask = 0;
  for (int i = 0; i < annlib::kLut16Group; ++i) {
    float score = a.inv_scale * static_cast<float>(totals[i]) + a.base;
    if (a.point_bias != nullptr) score += a.point_bias[first + i];
    scores[i] = score;
    if (score >= threshold) mask |= 1u << i;
  }
  return mask;
}
