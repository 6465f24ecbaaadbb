// Top-k selection helpers shared by the ISA kernel bodies (dense scan, LUT16).
// Included inside each ISA unit's anonymous namespace, like the bodies.

using annlib::SelectState;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Min-heap ordered so the root is the worst kept entry: lower score is worse,
// and on equal scores the larger id is worse (ground truth breaks ties by id).
inline bool Worse(float sa, int32_t ia, float sb, int32_t ib) {
  return sa < sb || (sa == sb && ia > ib);
}

inline void HeapPush(SelectState& st, int k, float s, int32_t id) {
  float* sc = st.scores;
  int32_t* ids = st.ids;
  if (st.size < k) {
    int i = st.size++;
    while (i > 0) {
      int parent = (i - 1) >> 1;
      if (!Worse(s, id, sc[parent], ids[parent])) break;
      sc[i] = sc[parent];
      ids[i] = ids[parent];
      i = parent;
    }
    sc[i] = s;
    ids[i] = id;
    return;
  }
  if (!Worse(sc[0], ids[0], s, id)) return;
  int i = 0;
  for (;;) {
    int child = 2 * i + 1;
    if (child >= k) break;
    if (child + 1 < k && Worse(sc[child + 1], ids[child + 1], sc[child], ids[child])) ++child;
    if (!Worse(sc[child], ids[child], s, id)) break;
    sc[i] = sc[child];
    ids[i] = ids[child];
    i = child;
  }
  sc[i] = s;
  ids[i] = id;
}

inline float HeapThreshold(const SelectState& st, int k) {
  return st.size < k ? kNegInf : st.scores[0];
}

