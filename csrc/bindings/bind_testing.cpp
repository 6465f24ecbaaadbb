// annlib._core.testing: drivers of single kernels for tests and
// micro-benchmarks, kept out of the production module's namespace. The
// indexes drive the same kernels over their own data.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/lut16.h"
#include "../quantization/lut16_tables.h"
#include "../search/dense_search.h"
#include "../search/row_order.h"
#include "../search/topk.h"
#include "../simd/dispatch.h"
#include "../util/aligned_memory.h"
#include "common.h"

namespace annlib_bindings {
namespace {

using namespace annlib;

// One list of LUT16-packed codes, scanned on its own: the kernel in
// isolation, for tests and micro-benchmarks (the partitioned index drives the
// same kernel over its leaves).
class Lut16Codes {
 public:
  // codes [n][num_blocks] uint8 with values 0..15.
  explicit Lut16Codes(py::array_t<uint8_t, py::array::c_style> codes) {
    if (codes.ndim() != 2 || codes.shape(0) < 1 || codes.shape(1) < 1)
      throw std::invalid_argument("codes must be a non-empty (n, num_blocks) uint8 array");
    n_ = codes.shape(0);
    num_blocks_ = static_cast<int32_t>(codes.shape(1));
    const int64_t groups = (n_ + kLut16Group - 1) / kLut16Group;
    packed_.resize(groups * PaddedBlocks(num_blocks_) * 16);
    ids_.assign(groups * kLut16Group, -1);
    for (int64_t j = 0; j < n_; ++j) ids_[j] = static_cast<int32_t>(j);
    PackLut16Codes(codes.data(), n_, num_blocks_, packed_.data());
  }

  // lut [num_blocks][16] float. Returns (ids int64 [k], approx scores [k]), best first.
  // allowed: None, or a filter bit per point (uint64 words).
  py::tuple TopK(FloatArray lut, int32_t k, py::object point_bias, const std::string& simd_level,
                 py::object allowed) const {
    if (lut.ndim() != 2 || lut.shape(1) != 16 || lut.shape(0) != num_blocks_)
      throw std::invalid_argument("lut must have shape (" + std::to_string(num_blocks_) + ", 16)");
    if (k <= 0 || k > n_) throw std::invalid_argument("k must be in [1, n]");
    py::array_t<uint64_t, py::array::c_style> bits;
    if (!allowed.is_none()) {
      bits = allowed.cast<py::array_t<uint64_t, py::array::c_style>>();
      if (bits.ndim() != 1 || bits.shape(0) * 64 < n_) throw std::invalid_argument("allowed needs a bit per point");
    }
    const Lut16ScanFn scan = Lut16KernelFor(LevelOrActive(simd_level));
    std::vector<float> bias;
    if (!point_bias.is_none()) {
      FloatArray pb = point_bias.cast<FloatArray>();
      if (pb.ndim() != 1 || pb.shape(0) != n_) throw std::invalid_argument("point_bias must have shape (n,)");
      bias.assign(pb.data(), pb.data() + n_);
      bias.resize(ids_.size(), 0.0f);
    }
    std::vector<uint8_t> table(PaddedBlocks(num_blocks_) * 16);
    std::vector<Candidate> found(CandidateCapacity(k));
    CandidateBuffer buffer = EmptyBuffer(found.data(), k);
    {
      py::gil_scoped_release release;
      Lut16Args args = ScanArgs(lut.data(), table.data(), &buffer);
      args.point_bias = bias.empty() ? nullptr : bias.data();
      args.allowed = allowed.is_none() ? nullptr : bits.data();
      scan(args);
      CompactCandidates(buffer);
    }
    py::array_t<int64_t> out_ids(k);
    FloatArray out_scores(k);
    WriteBest(buffer, k, out_ids.mutable_data(), out_scores.mutable_data());
    return py::make_tuple(out_ids, out_scores);
  }

  // The multi-query kernel (one pass over the codes for up to kLut16MaxQueries
  // tables at a time): luts [q][num_blocks][16] float. Returns (ids int64 [q][k],
  // approx scores [q][k]), each row best first, as topk() gives for that table.
  py::tuple TopKMany(FloatArray luts, int32_t k, const std::string& simd_level) const {
    if (luts.ndim() != 3 || luts.shape(0) < 1 || luts.shape(1) != num_blocks_ || luts.shape(2) != 16)
      throw std::invalid_argument("luts must have shape (q, " + std::to_string(num_blocks_) + ", 16), q >= 1");
    if (k <= 0 || k > n_) throw std::invalid_argument("k must be in [1, n]");
    const Lut16ScanMultiFn scan = Lut16MultiKernelFor(LevelOrActive(simd_level));
    const int64_t q = luts.shape(0), table_bytes = int64_t{PaddedBlocks(num_blocks_)} * 16;
    const int64_t capacity = CandidateCapacity(k);
    std::vector<uint8_t> tables(q * table_bytes);
    std::vector<Candidate> found(q * capacity);
    std::vector<CandidateBuffer> buffers(q);
    std::vector<Lut16Args> args(q);
    {
      py::gil_scoped_release release;
      for (int64_t j = 0; j < q; ++j) {
        buffers[j] = EmptyBuffer(found.data() + j * capacity, k);
        args[j] = ScanArgs(luts.data() + j * num_blocks_ * 16, tables.data() + j * table_bytes, &buffers[j]);
      }
      scan(args.data(), static_cast<int>(q));
      for (CandidateBuffer& b : buffers) CompactCandidates(b);
    }
    py::array_t<int64_t> out_ids({q, int64_t{k}});
    FloatArray out_scores({q, int64_t{k}});
    for (int64_t j = 0; j < q; ++j)
      WriteBest(buffers[j], k, out_ids.mutable_data() + j * k, out_scores.mutable_data() + j * k);
    return py::make_tuple(out_ids, out_scores);
  }

  int64_t size() const { return n_; }
  int32_t num_blocks() const { return num_blocks_; }

 private:
  // An empty buffer keeping k, over CandidateCapacity(k) entries.
  static CandidateBuffer EmptyBuffer(Candidate* entries, int32_t k) {
    return CandidateBuffer{entries, 0, static_cast<int32_t>(CandidateCapacity(k)), k,
                           -std::numeric_limits<float>::infinity()};
  }

  // The scan of every point with lut ([num_blocks][16] float, quantized into
  // `table`) into `buffer`: no point bias, no filter.
  Lut16Args ScanArgs(const float* lut, uint8_t* table, CandidateBuffer* buffer) const {
    Lut16Args a;
    QuantizeLut16(lut, num_blocks_, table, &a.inv_scale, &a.base);
    a.codes = packed_.data();
    a.num_points = n_;
    a.num_blocks = PaddedBlocks(num_blocks_);
    a.lut = table;
    a.point_bias = nullptr;
    a.ids = ids_.data();
    a.candidates = buffer;
    return a;
  }

  // A compacted buffer's best k, best first.
  static void WriteBest(const CandidateBuffer& b, int32_t k, int64_t* ids, float* scores) {
    std::vector<Candidate> cands(b.entries, b.entries + b.size);
    WriteTopK(cands, k, ids, scores);
  }

  int64_t n_ = 0;
  int32_t num_blocks_ = 0;
  std::vector<uint8_t> packed_;
  std::vector<int32_t> ids_;
};

// Feeds (score, id) entries to a candidate buffer as a scan does
// (OfferCandidate) and returns what the final
// compaction keeps, unordered. distinct: keep the best copy of each id only
// (every id in [0, max id], at most twice: SOAR's two leaves).
py::tuple SelectCandidates(py::array_t<float, py::array::c_style> scores,
                           py::array_t<int32_t, py::array::c_style> ids, int32_t keep, bool distinct) {
  if (scores.ndim() != 1 || ids.ndim() != 1 || scores.shape(0) != ids.shape(0))
    throw std::invalid_argument("scores and ids must be 1-d and of one length");
  if (keep < 1) throw std::invalid_argument("keep must be positive");
  const int64_t n = scores.shape(0);
  int64_t words = 1;
  for (int64_t i = 0; i < n; ++i) {
    if (ids.data()[i] < 0) throw std::invalid_argument("ids must be >= 0");
    words = std::max<int64_t>(words, ids.data()[i] / 64 + 1);
  }
  std::vector<Candidate> entries(CandidateCapacity(keep));
  std::vector<uint64_t> bits(2 * words, 0);
  CandidateBuffer buf{entries.data(), 0, static_cast<int32_t>(entries.size()), keep,
                      -std::numeric_limits<float>::infinity()};
  if (distinct) {
    buf.distinct = bits.data();
    buf.distinct_words = words;
  }
  for (int64_t i = 0; i < n; ++i) OfferCandidate(buf, scores.data()[i], ids.data()[i]);
  CompactCandidates(buf);
  for (uint64_t w : bits)
    if (w != 0) throw std::logic_error("the distinct bitmaps were left dirty");
  py::array_t<int32_t> out_ids(buf.size);
  py::array_t<float> out_scores(buf.size);
  for (int32_t i = 0; i < buf.size; ++i) {
    out_ids.mutable_data()[i] = buf.entries[i].id;
    out_scores.mutable_data()[i] = buf.entries[i].score;
  }
  return py::make_tuple(out_ids, out_scores);
}

// SelectBestScores (the leaf choice) with one SIMD level's row selections:
// the ids of the `count` best scores, in no particular order.
py::array_t<int32_t> SelectBestScoresPy(py::array_t<float, py::array::c_style> scores, int32_t count,
                                        const std::string& simd_level) {
  if (scores.ndim() != 1 || scores.shape(0) > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("scores must be 1-d, fewer than 2^31");
  const int32_t n = static_cast<int32_t>(scores.shape(0));
  const DenseKernels& kernels = DenseKernelsFor(LevelOrActive(simd_level));
  std::vector<Candidate> out(n);
  const int64_t kept = SelectBestScores(kernels.row_select, scores.data(), n, count, out.data());
  py::array_t<int32_t> ids(kept);
  for (int64_t i = 0; i < kept; ++i) ids.mutable_data()[i] = out[i].id;
  return ids;
}

// Reads whole rows at the given indexes, in order, with plain 64-bit loads
// (four independent sums), every line of the rows prefetched ahead as the
// re-ranking does (into L2, then L1: portable.h's distances): the memory
// system's rate for rows at random addresses, with no kernel of ours in the
// way (bench/roofline.py). Returns the sum of every word read, so that no
// read can be dropped.
uint64_t ReadRows(py::array rows, Int64Array ids) {
  if (rows.ndim() != 2 || !(rows.flags() & py::array::c_style))
    throw std::invalid_argument("rows must be a C-contiguous 2-D array");
  const int64_t row_bytes = rows.shape(1) * rows.itemsize();
  if (row_bytes % 32 != 0) throw std::invalid_argument("rows must be a multiple of 32 bytes wide");
  const int64_t n = rows.shape(0), count = ids.shape(0);
  const int64_t* id = ids.data();
  for (int64_t i = 0; i < count; ++i)
    if (id[i] < 0 || id[i] >= n) throw std::invalid_argument("ids must index rows");
  const char* base = static_cast<const char*>(rows.data());
  uint64_t total = 0;
  {
    py::gil_scoped_release release;
    uint64_t s[4] = {0, 0, 0, 0};
    const RowPrefetchDistances ahead = RowPrefetchFor((row_bytes + 63) / 64);
    auto fetch = [&](int64_t r, bool to_l1) {
      const char* row = base + id[r] * row_bytes;
      for (int64_t b = 0; b < row_bytes; b += 64) PrefetchInto(row + b, to_l1);
    };
    PrefetchFirstRows(ahead, count, fetch);
    for (int64_t i = 0; i < count; ++i) {
      PrefetchRowsAhead(ahead, i, count, fetch);
      const uint64_t* row = reinterpret_cast<const uint64_t*>(base + id[i] * row_bytes);
      for (int64_t w = 0; w < row_bytes / 8; w += 4)
        for (int j = 0; j < 4; ++j) s[j] += row[w + j];
    }
    total = s[0] + s[1] + s[2] + s[3];
  }
  return total;
}

// The offsets from 64-byte and 2 MB boundaries of a ScanVector of `bytes`
// bytes grown one element at a time (as an updated leaf grows), then resized
// to `bytes` at once.
py::tuple ScanBufferOffsets(int64_t bytes) {
  if (bytes < 1) throw std::invalid_argument("bytes must be >= 1");
  annlib::ScanVector<uint8_t> grown;
  for (int64_t i = 0; i < bytes; ++i) grown.push_back(static_cast<uint8_t>(i));
  annlib::ScanVector<uint8_t> sized(static_cast<size_t>(bytes));
  auto offsets = [](const void* p) {
    const auto at = reinterpret_cast<uintptr_t>(p);
    return py::make_tuple(static_cast<int64_t>(at % 64), static_cast<int64_t>(at % (uintptr_t{2} << 20)));
  };
  return py::make_tuple(offsets(grown.data()), offsets(sized.data()));
}

// The int8 screen of binned float32 brute force, point by point: for x [n][d]
// and queries q [nq][d] (squared_l2: bias -|x|^2/2, else 0), returns
// (screen [nq][n], float32 [nq][n], margin [nq][n]): the int8 copy's scores,
// the float32 scan's, and the margin the screen's rescoring allows (twice its
// error bound), so tests can check |screen - float32| <= margin / 2 everywhere.
py::tuple Int8ScreenErrors(FloatArray x, FloatArray q, bool squared_l2, const std::string& simd_level,
                           const std::string& bf16_variant) {
  if (x.ndim() != 2 || q.ndim() != 2 || x.shape(0) < 1 || x.shape(1) < 1 || q.shape(1) != x.shape(1))
    throw std::invalid_argument("x must be (n, d) and q (nq, d), n and d positive");
  const int64_t n = x.shape(0), nq = q.shape(0);
  const int32_t d = static_cast<int32_t>(x.shape(1));
  // At avx512_bf16, "auto" is the AMX table where AMX is usable; "native" and
  // "widened" name the vector kernels.
  const DenseKernels& kernels = DenseKernelsFor(LevelOrActive(simd_level), ParseBf16Variant(bf16_variant));
  if (!kernels.int8_screen) throw std::invalid_argument("this SIMD level and variant have no int8 screen");
  const int64_t panels = (n + kPanelWidth - 1) / kPanelWidth, padded = panels * kPanelWidth;
  std::vector<uint8_t> f32_panels(panels * PanelBytes(DenseType::kFloat32, d));
  std::vector<float> bias(padded), norms(padded);
  std::vector<float> screen(nq * padded), exact(nq * padded);
  py::array_t<double> margin({nq, n});
  {
    py::gil_scoped_release release;
    DensePointArrays f32_out;
    f32_out.bias = bias.data();
    f32_out.norms = norms.data();
    PackDense(x.data(), n, d, DenseType::kFloat32, squared_l2, f32_panels.data(), f32_out, 1);
    DenseView db;
    db.n = n;
    db.dim = d;
    db.panels = f32_panels.data();
    db.bias = bias.data();
    db.norms = norms.data();
    Int8Copy copy;
    MakeInt8Copy(db, 1, &copy);
    db.int8_copy = &copy.view;
    DenseScores(copy.view, kernels, q.data(), nq, screen.data(), padded, 1);
    DenseScores(db, kernels, q.data(), nq, exact.data(), padded, 1);
    double* m = margin.mutable_data();
    for (int64_t i = 0; i < nq; ++i) {
      const ScreenErrorBound bound(db, kernels, true, q.data() + i * d);
      for (int64_t j = 0; j < n; ++j) m[i * n + j] = bound(j);
    }
  }
  auto cut = [&](const std::vector<float>& all) {
    py::array_t<float> out({nq, n});
    for (int64_t i = 0; i < nq; ++i)
      std::copy(all.begin() + i * padded, all.begin() + i * padded + n, out.mutable_data() + i * n);
    return out;
  };
  return py::make_tuple(cut(screen), cut(exact), margin);
}

}  // namespace

void RegisterTesting(py::module_& parent) {
  py::module_ m = parent.def_submodule("testing", "kernel drivers for tests and micro-benchmarks");
  py::class_<Lut16Codes>(m, "Lut16Codes")
      .def(py::init<py::array_t<uint8_t, py::array::c_style>>(), py::arg("codes").noconvert())
      .def("topk", &Lut16Codes::TopK, py::arg("lut").noconvert(), py::arg("k"),
           py::arg("point_bias") = py::none(), py::arg("simd_level") = "", py::arg("allowed") = py::none())
      .def("topk_many", &Lut16Codes::TopKMany, py::arg("luts").noconvert(), py::arg("k"),
           py::arg("simd_level") = "")
      .def_property_readonly("size", &Lut16Codes::size)
      .def_property_readonly("num_blocks", &Lut16Codes::num_blocks);
  m.def("select_candidates", &SelectCandidates, py::arg("scores").noconvert(), py::arg("ids").noconvert(),
        py::arg("keep"), py::arg("distinct"));
  m.def("select_best_scores", &SelectBestScoresPy, py::arg("scores").noconvert(), py::arg("count"),
        py::arg("simd_level") = "", "ids of the `count` best scores (leaf choice), in no particular order");
  m.def("row_order_pays", &RowOrderPays, py::arg("pairs"), py::arg("num_rows"),
        "whether a batch's reordering of `pairs` (query, row) products over a copy of `num_rows` rows is done in "
        "row order (search/row_order.h)");
  m.def("read_rows", &ReadRows, py::arg("rows"), py::arg("ids").noconvert(),
        "reads rows[ids] whole, in order (a memory-rate probe); returns a checksum");
  m.def("int8_screen_errors", &Int8ScreenErrors, py::arg("x").noconvert(), py::arg("q").noconvert(),
        py::arg("squared_l2"), py::arg("simd_level") = "", py::arg("bf16_variant") = "auto",
        "(int8 screen scores, float32 scores, margins), each (nq, n): binned brute force's int8 screen point by point");
  m.def("scan_buffer_offsets", &ScanBufferOffsets, py::arg("bytes"),
        "((offset from 64 B, from 2 MB) of a ScanVector grown to `bytes`, the same of one sized at once)");
}

}  // namespace annlib_bindings
