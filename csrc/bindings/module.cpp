// annlib._core: thin pybind11 layer. Arrays arrive already validated and in
// their exact dtype/layout from the Python API edge (annlib/_validate.py);
// here they are taken with noconvert() so nothing is copied silently. Outputs
// are allocated with the GIL held; compute runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>
#include <string>

#include "../quantization/ah_encode.h"
#include "../quantization/lut16_tables.h"
#include "../quantization/soar.h"
#include "../search/dense_search.h"
#include "../search/maxsim_search.h"
#include "../search/partitioned_search.h"
#include "../search/topk.h"
#include "../simd/dispatch.h"
#include "common.h"

namespace py = pybind11;
using namespace annlib;

namespace {

using namespace annlib_bindings;

constexpr const char* kInt8FloatArrays[] = {"scale", "offset", "scaled_sums"};

// Packs x [n][dim] into the panel layout; returns the arrays a DenseScorer
// needs (and a saved index stores): panels (uint8), bias, for float32 norms,
// and for int8 scale, offset, sums and scaled_sums.
py::dict PackDensePy(FloatArray x, const std::string& dtype, bool squared_l2, int num_threads) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be 2-D");
  const DenseType type = ParseDenseType(dtype);
  const int64_t n = x.shape(0);
  const int32_t dim = static_cast<int32_t>(x.shape(1));
  const int64_t padded = (n + kPanelWidth - 1) / kPanelWidth * kPanelWidth;
  py::array_t<uint8_t> panels({padded / kPanelWidth, PanelBytes(type, dim)});
  FloatArray bias(padded);
  py::dict out;
  DensePointArrays arrays;
  arrays.bias = bias.mutable_data();
  if (type == DenseType::kInt8) {
    float** slots[] = {&arrays.scale, &arrays.offset, &arrays.scaled_sums};
    for (int i = 0; i < 3; ++i) {
      FloatArray a(padded);
      *slots[i] = a.mutable_data();
      out[kInt8FloatArrays[i]] = a;
    }
    Int32Array sums(padded);
    arrays.sums = sums.mutable_data();
    out["sums"] = sums;
  }
  if (type == DenseType::kFloat32) {
    FloatArray norms(padded);
    arrays.norms = norms.mutable_data();
    out["norms"] = norms;
  }
  const float* xp = x.data();
  void* pp = panels.mutable_data();
  Interruptible([&] { PackDense(xp, n, dim, type, squared_l2, pp, arrays, num_threads); });
  out["panels"] = panels;
  out["bias"] = bias;
  return out;
}

// Row-major copy for exact rescoring: rows (float32, uint16 = bfloat16 bits,
// or int8) padded to RowStride(dim) columns, bias, and for int8 scale/offset.
py::dict PackRowsPy(FloatArray x, const std::string& dtype, bool squared_l2, int num_threads) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be 2-D");
  const DenseType type = ParseDenseType(dtype);
  const int64_t n = x.shape(0);
  const int32_t dim = static_cast<int32_t>(x.shape(1));
  const int64_t stride = RowStride(dim);
  py::array rows;
  switch (type) {
    case DenseType::kFloat32: rows = py::array_t<float>({n, stride}); break;
    case DenseType::kBFloat16: rows = py::array_t<uint16_t>({n, stride}); break;
    case DenseType::kInt8: rows = py::array_t<int8_t>({n, stride}); break;
  }
  FloatArray bias(n), scale(type == DenseType::kInt8 ? n : 0), offset(type == DenseType::kInt8 ? n : 0);
  const float* xp = x.data();
  void* rp = rows.mutable_data();
  float *bp = bias.mutable_data(), *sp = scale.mutable_data(), *op = offset.mutable_data();
  Interruptible([&] { PackRows(xp, n, dim, type, squared_l2, rp, bp, sp, op, num_threads); });
  py::dict out;
  out["rows"] = rows;
  out["row_bias"] = bias;
  if (type == DenseType::kInt8) {
    out["row_scale"] = scale;
    out["row_offset"] = offset;
  }
  return out;
}

// Anisotropic PQ codes [n][num_blocks] of residuals under centers
// [num_blocks][16][dims_per_block] (see quantization/ah_encode.h).
Uint8Array AhEncodePy(FloatArray residuals, FloatArray originals, FloatArray centers, float threshold,
                      int32_t eta_dim, int32_t max_rounds, int num_threads) {
  if (residuals.ndim() != 2 || originals.ndim() != 2 || residuals.shape(0) != originals.shape(0) ||
      residuals.shape(1) != originals.shape(1))
    throw std::invalid_argument("residuals and originals must be 2-D arrays of the same shape");
  if (centers.ndim() != 3 || centers.shape(1) != 16 || centers.shape(0) * centers.shape(2) != residuals.shape(1))
    throw std::invalid_argument("centers must have shape (num_blocks, 16, dims_per_block) covering every dimension");
  AhEncodeArgs a;
  a.residuals = residuals.data();
  a.originals = originals.data();
  a.n = residuals.shape(0);
  a.num_blocks = static_cast<int32_t>(centers.shape(0));
  a.dims_per_block = static_cast<int32_t>(centers.shape(2));
  a.centers = centers.data();
  a.threshold = threshold;
  a.eta_dim = eta_dim;
  a.max_rounds = max_rounds;
  Uint8Array codes({a.n, int64_t{a.num_blocks}});
  a.codes = codes.mutable_data();
  Interruptible([&] { AhEncode(a, num_threads); });
  return codes;
}

// SOAR spill center of every point (quantization/soar.h): x [n][d], centers
// [L][d], primary [n] -> int32 [n] (equal to primary where not spilled).
Int32Array SoarAssignPy(FloatArray x, FloatArray centers, Int64Array primary, float lambda, int num_threads,
                        const std::string& simd_level) {
  if (x.ndim() != 2 || centers.ndim() != 2 || x.shape(1) != centers.shape(1) || centers.shape(0) < 1)
    throw std::invalid_argument("x (n, d) and centers (L, d) must be 2-D with the same d");
  if (primary.ndim() != 1 || primary.shape(0) != x.shape(0))
    throw std::invalid_argument("primary must have shape (n,)");
  const int64_t n = x.shape(0), num_centers = centers.shape(0);
  const int32_t dim = static_cast<int32_t>(x.shape(1));
  DenseView cv;
  cv.type = DenseType::kFloat32;
  cv.n = num_centers;
  cv.dim = dim;
  std::vector<uint8_t> panels(cv.num_panels() * PanelBytes(DenseType::kFloat32, dim));
  std::vector<float> bias(cv.num_panels() * kPanelWidth);
  Int32Array secondary(n);
  SoarArgs a{x.data(), n, centers.data(), cv, primary.data(), lambda, secondary.mutable_data()};
  const DenseKernels& kernels = DenseKernelsFor(LevelOrActive(simd_level));
  const float* cp = centers.data();
  Interruptible([&] {
    DensePointArrays out;
    out.bias = bias.data();
    PackDense(cp, num_centers, dim, DenseType::kFloat32, false, panels.data(), out, num_threads);
    a.center_panels.panels = panels.data();
    a.center_panels.bias = bias.data();
    SoarAssign(a, kernels, num_threads);
  });
  return secondary;
}

// codes [slots][num_blocks] (slots a multiple of 32) -> LUT16 packed layout.
Uint8Array PackLut16CodesPy(Uint8Array codes) {
  if (codes.ndim() != 2 || codes.shape(0) % kLut16Group != 0 || codes.shape(1) < 1)
    throw std::invalid_argument("codes must have shape (slots, num_blocks) with slots a multiple of 32");
  const int64_t slots = codes.shape(0);
  const int32_t nb = static_cast<int32_t>(codes.shape(1));
  Uint8Array packed({slots / kLut16Group, int64_t{PaddedBlocks(nb)} * 16});
  PackLut16Codes(codes.data(), slots, nb, packed.mutable_data());
  return packed;
}

// Holds references to the packed arrays (possibly read-only memory maps) so
// they outlive every search.
class DenseScorer {
 public:
  DenseScorer(py::dict arrays, int64_t n, int32_t dim, const std::string& dtype, const std::string& simd_level,
              const std::string& bf16_variant)
      : arrays_(arrays),
        kernels_(&DenseKernelsFor(LevelOrActive(simd_level), ParseBf16Variant(bf16_variant))) {
    view_.type = ParseDenseType(dtype);
    view_.n = n;
    view_.dim = dim;
    if (n <= 0 || dim <= 0) throw std::invalid_argument("n and dim must be positive");
    const int64_t padded = view_.num_panels() * kPanelWidth;
    py::array panels = Get<py::array>("panels");
    if (panels.nbytes() != view_.num_panels() * PanelBytes(view_.type, dim) ||
        !(panels.flags() & py::array::c_style))
      throw std::invalid_argument("panels array has the wrong size or layout for n, dim and dtype");
    view_.panels = panels.data();
    view_.bias = Vector<FloatArray>("bias", padded).data();
    if (view_.type == DenseType::kInt8) {
      view_.scale = Vector<FloatArray>("scale", padded).data();
      view_.offset = Vector<FloatArray>("offset", padded).data();
      view_.scaled_sums = Vector<FloatArray>("scaled_sums", padded).data();
      view_.sums = Vector<Int32Array>("sums", padded).data();
    }
    // Indexes saved before norms were packed lack them: without the error bound,
    // the 2k best screened bin winners are rescored.
    if (view_.type == DenseType::kFloat32 && arrays_.contains("norms"))
      view_.norms = Vector<FloatArray>("norms", padded).data();
  }

  // allowed: None, or a filter bit per point (uint64 words covering every panel).
  py::tuple Search(FloatArray queries, int32_t k, int32_t num_bins, int num_threads, py::object allowed) const {
    if (queries.ndim() != 2 || queries.shape(1) != view_.dim)
      throw std::invalid_argument("queries must have shape (num_queries, " + std::to_string(view_.dim) + ")");
    if (k <= 0 || k > view_.n) throw std::invalid_argument("k must be in [1, n]");
    py::array_t<uint64_t, py::array::c_style> bits;
    if (!allowed.is_none()) {
      bits = allowed.cast<py::array_t<uint64_t, py::array::c_style>>();
      if (bits.ndim() != 1 || bits.shape(0) * 64 < view_.num_panels() * kPanelWidth)
        throw std::invalid_argument("allowed must hold a bit for every point of every panel");
    }
    const uint64_t* allowed_bits = allowed.is_none() ? nullptr : bits.data();
    const int64_t nq = queries.shape(0);
    py::array_t<int64_t> ids({nq, int64_t{k}});
    FloatArray scores({nq, int64_t{k}});
    const float* qp = queries.data();
    int64_t* ip = ids.mutable_data();
    float* sp = scores.mutable_data();
    Interruptible([&] { DenseSearch(view_, *kernels_, qp, nq, k, num_bins, num_threads, ip, sp, allowed_bits); });
    return py::make_tuple(ids, scores);
  }

  std::string simd_level() const { return kernels_->level_name; }

 private:
  template <class A>
  A Get(const char* name) const {
    if (!arrays_.contains(name)) throw std::invalid_argument(std::string("missing array '") + name + "'");
    return arrays_[name].cast<A>();
  }
  template <class A>
  A Vector(const char* name, int64_t length) const {
    return DictVector<A>(arrays_, name, length);
  }

  py::dict arrays_;  // keeps every buffer alive
  DenseView view_;
  const DenseKernels* kernels_;
};

// Late-interaction scoring over a token store (float16, or int8 with a
// per-token scale). Keeps references to the arrays, which may be read-only maps.
class MaxSimScorer {
 public:
  MaxSimScorer(py::array tokens, py::object token_scale, Int64Array offsets, const std::string& simd_level)
      : tokens_(tokens), offsets_(offsets), level_(LevelOrActive(simd_level)), kernel_(MaxSimKernelFor(level_)) {
    if (tokens.ndim() != 2 || tokens.shape(1) < 1 || !(tokens.flags() & py::array::c_style))
      throw std::invalid_argument("tokens must be a C-contiguous (num_tokens, dim) array");
    if (tokens.dtype().is(py::dtype("float16"))) {
      store_.type = TokenType::kFloat16;
      if (!token_scale.is_none()) throw std::invalid_argument("float16 tokens take no token_scale");
    } else if (tokens.dtype().is(py::dtype::of<int8_t>())) {
      store_.type = TokenType::kInt8;
      if (token_scale.is_none()) throw std::invalid_argument("int8 tokens need token_scale");
      scale_ = token_scale.cast<FloatArray>();
      if (scale_.ndim() != 1 || scale_.shape(0) != tokens.shape(0))
        throw std::invalid_argument("token_scale must be float32 with one entry per token");
      store_.token_scale = scale_.data();
    } else {
      throw std::invalid_argument("tokens must be float16 or int8");
    }
    if (offsets.ndim() != 1 || offsets.shape(0) < 2) throw std::invalid_argument("offsets must be 1-D with >= 2 entries");
    store_.tokens = tokens.data();
    store_.offsets = offsets.data();
    store_.num_docs = offsets.shape(0) - 1;
    store_.dim = static_cast<int32_t>(tokens.shape(1));
    CheckTokenOffsets(store_.offsets, store_.num_docs, tokens.shape(0));
  }

  FloatArray Scores(FloatArray query_tokens, Int64Array doc_ids, int num_threads) const {
    if (query_tokens.ndim() != 2 || query_tokens.shape(1) != store_.dim || query_tokens.shape(0) < 1)
      throw std::invalid_argument("query_tokens must have shape (m >= 1, dim)");
    if (doc_ids.ndim() != 1) throw std::invalid_argument("doc_ids must be 1-D");
    FloatArray out(doc_ids.shape(0));
    const float* qp = query_tokens.data();
    const int32_t m = static_cast<int32_t>(query_tokens.shape(0));
    const int64_t* dp = doc_ids.data();
    const int64_t count = doc_ids.shape(0);
    float* op = out.mutable_data();
    Interruptible([&] { MaxSimScores(store_, kernel_, qp, m, dp, count, op, num_threads); });
    return out;
  }

  std::string simd_level() const { return SimdLevelName(level_); }

 private:
  py::array tokens_;
  FloatArray scale_;
  Int64Array offsets_;
  SimdLevel level_;
  MaxSimFn kernel_;
  TokenStore store_{};
};

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
    CandidateBuffer buffer{found.data(), 0, static_cast<int32_t>(found.size()), k,
                           -std::numeric_limits<float>::infinity()};
    {
      py::gil_scoped_release release;
      Lut16Args args;
      QuantizeLut16(lut.data(), num_blocks_, table.data(), &args.inv_scale, &args.base);
      args.codes = packed_.data();
      args.num_points = n_;
      args.num_blocks = PaddedBlocks(num_blocks_);
      args.lut = table.data();
      args.point_bias = bias.empty() ? nullptr : bias.data();
      args.ids = ids_.data();
      args.candidates = &buffer;
      args.allowed = allowed.is_none() ? nullptr : bits.data();
      scan(args);
      CompactCandidates(buffer);
    }
    std::vector<Candidate> cands(found.begin(), found.begin() + buffer.size);
    py::array_t<int64_t> out_ids(k);
    FloatArray out_scores(k);
    WriteTopK(cands, k, out_ids.mutable_data(), out_scores.mutable_data());
    return py::make_tuple(out_ids, out_scores);
  }

  int64_t size() const { return n_; }
  int32_t num_blocks() const { return num_blocks_; }

 private:
  int64_t n_ = 0;
  int32_t num_blocks_ = 0;
  std::vector<uint8_t> packed_;
  std::vector<int32_t> ids_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "annlib C++ core: SIMD kernels and search drivers";
  m.def("simd_level", []() { return std::string(SimdLevelName(ActiveLevel())); },
        "SIMD level in use (best supported, lowered by ANNLIB_SIMD_LEVEL).");
  m.def("max_simd_level", []() { return std::string(SimdLevelName(MaxSupportedLevel())); });
  m.def("amx_usable", &AmxUsable, "whether bfloat16 brute force can run on AMX tiles here");
  m.def("supported_simd_levels", []() {
    std::vector<std::string> names;
    for (SimdLevel level : SupportedLevels()) names.emplace_back(SimdLevelName(level));
    return names;
  });
  m.def("pack_dense", &PackDensePy, py::arg("x").noconvert(), py::arg("dtype"),
        py::arg("squared_l2"), py::arg("num_threads") = 0);
  m.def("pack_rows", &PackRowsPy, py::arg("x").noconvert(), py::arg("dtype"), py::arg("squared_l2"),
        py::arg("num_threads") = 0);
  m.def("ah_encode", &AhEncodePy, py::arg("residuals").noconvert(), py::arg("originals").noconvert(),
        py::arg("centers").noconvert(), py::arg("threshold"), py::arg("eta_dim"), py::arg("max_rounds") = 10,
        py::arg("num_threads") = 0);
  m.def("anisotropic_eta", &AnisotropicEta, py::arg("threshold"), py::arg("norm2"), py::arg("eta_dim"));
  m.def("soar_assign", &SoarAssignPy, py::arg("x").noconvert(), py::arg("centers").noconvert(),
        py::arg("primary").noconvert(), py::arg("soar_lambda"), py::arg("num_threads") = 0,
        py::arg("simd_level") = "");
  m.def("pack_lut16_codes", &PackLut16CodesPy, py::arg("codes").noconvert());
  annlib_bindings::RegisterPartitionedScorer(m);
  annlib_bindings::RegisterInterrupts(m);
  py::class_<Lut16Codes>(m, "Lut16Codes")
      .def(py::init<py::array_t<uint8_t, py::array::c_style>>(), py::arg("codes").noconvert())
      .def("topk", &Lut16Codes::TopK, py::arg("lut").noconvert(), py::arg("k"),
           py::arg("point_bias") = py::none(), py::arg("simd_level") = "", py::arg("allowed") = py::none())
      .def_property_readonly("size", &Lut16Codes::size)
      .def_property_readonly("num_blocks", &Lut16Codes::num_blocks);
  py::class_<MaxSimScorer>(m, "MaxSimScorer")
      .def(py::init<py::array, py::object, Int64Array, const std::string&>(), py::arg("tokens"),
           py::arg("token_scale"), py::arg("offsets").noconvert(), py::arg("simd_level") = "")
      .def("scores", &MaxSimScorer::Scores, py::arg("query_tokens").noconvert(), py::arg("doc_ids").noconvert(),
           py::arg("num_threads") = 1)
      .def_property_readonly("simd_level", &MaxSimScorer::simd_level);
  py::class_<DenseScorer>(m, "DenseScorer")
      .def(py::init<py::dict, int64_t, int32_t, const std::string&, const std::string&, const std::string&>(),
           py::arg("arrays"), py::arg("n"), py::arg("dim"), py::arg("dtype"), py::arg("simd_level") = "",
           py::arg("bf16_variant") = "auto")
      .def("search", &DenseScorer::Search, py::arg("queries").noconvert(), py::arg("k"),
           py::arg("num_bins"), py::arg("num_threads") = 0, py::arg("allowed") = py::none())
      .def_property_readonly("simd_level", &DenseScorer::simd_level);
}
