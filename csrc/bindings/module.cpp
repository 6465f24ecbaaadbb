// annlib._core: thin pybind11 layer. Arrays arrive already validated and in
// their exact dtype/layout from the Python API edge (annlib/_validate.py);
// here they are taken with noconvert() so nothing is copied silently. Outputs
// are allocated with the GIL held; compute runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <vector>
#include <string>

#include "../quantization/lut16_tables.h"
#include "../search/dense_search.h"
#include "../search/topk.h"
#include "../simd/dispatch.h"

namespace py = pybind11;
using namespace annlib;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using Int32Array = py::array_t<int32_t, py::array::c_style>;

DenseType ParseDenseType(const std::string& name) {
  if (name == "float32") return DenseType::kFloat32;
  if (name == "bfloat16") return DenseType::kBFloat16;
  if (name == "int8") return DenseType::kInt8;
  throw std::invalid_argument("dtype must be 'float32', 'bfloat16' or 'int8', got '" + name + "'");
}

SimdLevel LevelOrActive(const std::string& name) {
  return name.empty() ? ActiveLevel() : ParseSimdLevel(name);
}

constexpr const char* kInt8FloatArrays[] = {"scale", "offset", "scaled_sums"};

// Packs x [n][dim] into the panel layout; returns the arrays a DenseScorer
// needs (and a saved index stores): panels (uint8), bias, and for int8 also
// scale, offset, sums and scaled_sums.
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
  const float* xp = x.data();
  void* pp = panels.mutable_data();
  {
    py::gil_scoped_release release;
    PackDense(xp, n, dim, type, squared_l2, pp, arrays, num_threads);
  }
  out["panels"] = panels;
  out["bias"] = bias;
  return out;
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
  }

  py::tuple Search(FloatArray queries, int32_t k, int32_t num_bins, int num_threads) const {
    if (queries.ndim() != 2 || queries.shape(1) != view_.dim)
      throw std::invalid_argument("queries must have shape (num_queries, " + std::to_string(view_.dim) + ")");
    if (k <= 0 || k > view_.n) throw std::invalid_argument("k must be in [1, n]");
    const int64_t nq = queries.shape(0);
    py::array_t<int64_t> ids({nq, int64_t{k}});
    FloatArray scores({nq, int64_t{k}});
    const float* qp = queries.data();
    int64_t* ip = ids.mutable_data();
    float* sp = scores.mutable_data();
    {
      py::gil_scoped_release release;
      DenseSearch(view_, *kernels_, qp, nq, k, num_bins, num_threads, ip, sp);
    }
    return py::make_tuple(ids, scores);
  }

  std::string simd_level() const { return kernels_->level_name; }

 private:
  template <class A>
  A Get(const char* name) const {
    if (!arrays_.contains(name)) throw std::invalid_argument(std::string("missing array '") + name + "'");
    return arrays_[name].cast<A>();
  }
  // A 1-D array of exactly `length` elements of the right dtype, no conversion.
  template <class A>
  A Vector(const char* name, int64_t length) const {
    py::object obj = arrays_[name];
    if (!A::check_(obj)) throw std::invalid_argument(std::string("array '") + name + "' has the wrong dtype");
    A a = obj.cast<A>();
    if (a.ndim() != 1 || a.shape(0) != length)
      throw std::invalid_argument(std::string("array '") + name + "' has the wrong length");
    return a;
  }

  py::dict arrays_;  // keeps every buffer alive
  DenseView view_;
  const DenseKernels* kernels_;
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
  py::tuple TopK(FloatArray lut, int32_t k, py::object point_bias, const std::string& simd_level) const {
    if (lut.ndim() != 2 || lut.shape(1) != 16 || lut.shape(0) != num_blocks_)
      throw std::invalid_argument("lut must have shape (" + std::to_string(num_blocks_) + ", 16)");
    if (k <= 0 || k > n_) throw std::invalid_argument("k must be in [1, n]");
    const Lut16ScanFn scan = Lut16KernelFor(LevelOrActive(simd_level));
    std::vector<float> bias;
    if (!point_bias.is_none()) {
      FloatArray pb = point_bias.cast<FloatArray>();
      if (pb.ndim() != 1 || pb.shape(0) != n_) throw std::invalid_argument("point_bias must have shape (n,)");
      bias.assign(pb.data(), pb.data() + n_);
      bias.resize(ids_.size(), 0.0f);
    }
    std::vector<uint8_t> table(PaddedBlocks(num_blocks_) * 16);
    std::vector<float> heap_scores(k);
    std::vector<int32_t> heap_ids(k);
    SelectState state{heap_scores.data(), heap_ids.data(), 0};
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
      args.k = k;
      args.state = &state;
      scan(args);
    }
    std::vector<Candidate> cands;
    for (int i = 0; i < state.size; ++i) cands.push_back({heap_scores[i], heap_ids[i]});
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
  m.def("supported_simd_levels", []() {
    std::vector<std::string> names;
    for (SimdLevel level : SupportedLevels()) names.emplace_back(SimdLevelName(level));
    return names;
  });
  m.def("pack_dense", &PackDensePy, py::arg("x").noconvert(), py::arg("dtype"),
        py::arg("squared_l2"), py::arg("num_threads") = 0);
  py::class_<Lut16Codes>(m, "Lut16Codes")
      .def(py::init<py::array_t<uint8_t, py::array::c_style>>(), py::arg("codes").noconvert())
      .def("topk", &Lut16Codes::TopK, py::arg("lut").noconvert(), py::arg("k"),
           py::arg("point_bias") = py::none(), py::arg("simd_level") = "")
      .def_property_readonly("size", &Lut16Codes::size)
      .def_property_readonly("num_blocks", &Lut16Codes::num_blocks);
  py::class_<DenseScorer>(m, "DenseScorer")
      .def(py::init<py::dict, int64_t, int32_t, const std::string&, const std::string&, const std::string&>(),
           py::arg("arrays"), py::arg("n"), py::arg("dim"), py::arg("dtype"), py::arg("simd_level") = "",
           py::arg("bf16_variant") = "auto")
      .def("search", &DenseScorer::Search, py::arg("queries").noconvert(), py::arg("k"),
           py::arg("num_bins"), py::arg("num_threads") = 0)
      .def_property_readonly("simd_level", &DenseScorer::simd_level);
}
