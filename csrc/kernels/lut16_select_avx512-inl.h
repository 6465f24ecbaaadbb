// Scoring and candidate selection of a group's 32 totals with AVX-512,
// included in the anonymous namespace of each AVX-512 LUT16 unit after
// lut16-inl.h (Lut16Select, the scalar path).

inline uint32_t Lut16ScoreAvx512(const annlib::Lut16Args& a, int64_t group, const int32_t* totals, float* scores) {
  const __m512 inv_scale = _mm512_set1_ps(a.inv_scale);
  const __m512 base = _mm512_set1_ps(a.base);
  const __m512 threshold = _mm512_set1_ps(a.candidates->threshold);
  uint32_t mask = 0;
  for (int v = 0; v < 2; ++v) {
    __m512 s = _mm512_add_ps(_mm512_mul_ps(inv_scale, _mm512_cvtepi32_ps(_mm512_loadu_si512(totals + 16 * v))), base);
    if (a.point_bias != nullptr)
      s = _mm512_add_ps(s, _mm512_loadu_ps(a.point_bias + group * annlib::kLut16Group + 16 * v));
    _mm512_storeu_ps(scores + 16 * v, s);
    mask |= static_cast<uint32_t>(_mm512_cmp_ps_mask(s, threshold, _CMP_GE_OQ)) << (16 * v);
  }
  return mask;
}

// Lut16Select with two compresses per 16 lanes, when no filter applies and
// the buffer has room for the whole group (then no MakeRoom can happen
// within it, and the survivors are appended in lane order as Lut16Select
// would: the same buffer). The register form of the compress: Zen 4
// microcodes the form that stores to memory.
inline void Lut16SelectAvx512(const annlib::Lut16Args& a, int64_t group, const float* scores, uint32_t mask) {
  annlib::CandidateBuffer& buf = *a.candidates;
  if (mask == 0) return;
  if (a.allowed != nullptr || buf.size + annlib::kLut16Group > buf.capacity) {
    Lut16Select(a, group, scores, mask);
    return;
  }
  const int64_t first = group * annlib::kLut16Group;
  const int64_t left = a.num_points - first;
  if (left < annlib::kLut16Group) mask &= (uint32_t{1} << left) - 1;  // padding lanes
  const __m512i lo_pairs = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi_pairs = _mm512_add_epi32(lo_pairs, _mm512_set1_epi32(8));
  for (int v = 0; v < 2; ++v) {
    const __m512i ids = _mm512_loadu_si512(a.ids + first + 16 * v);
    const __m512i s = _mm512_castps_si512(_mm512_loadu_ps(scores + 16 * v));
    // Empty slots (id < 0) are never returned.
    const uint32_t m = (mask >> (16 * v)) & _mm512_cmpge_epi32_mask(ids, _mm512_setzero_si512());
    const __mmask8 m0 = static_cast<__mmask8>(m), m1 = static_cast<__mmask8>(m >> 8);
    annlib::Candidate* out = buf.entries + buf.size;
    _mm512_storeu_si512(out, _mm512_maskz_compress_epi64(m0, _mm512_permutex2var_epi32(s, lo_pairs, ids)));
    out += annlib::PopCount64(m0);
    _mm512_storeu_si512(out, _mm512_maskz_compress_epi64(m1, _mm512_permutex2var_epi32(s, hi_pairs, ids)));
    buf.size += annlib::PopCount64(m0) + annlib::PopCount64(m1);
  }
}
