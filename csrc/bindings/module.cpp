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
#include "../quantization/codebook_update.h"
#include "../quantization/lut16_tables.h"
#include "../quantization/reconstruction.h"
#include "../quantization/soar.h"
#include "../search/dense_search.h"
#include "../search/metric.h"
#include "../index/index_format.h"
#include "../search/partitioned_search.h"
#include "../search/topk.h"
#include "../simd/dispatch.h"
#include "../util/parallel.h"
#include "common.h"

namespace py = pybind11;
using namespace annlib;

namespace {

using namespace annlib_bindings;

constexpr const char* kInt8FloatArrays[] = {"scale", "offset", "scaled_sums"};

// Packs x [n][dim] into the panel layout; returns the arrays a DenseIndex
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

// The arguments both encoding bindings share, centers checked against dim columns.
AhEncodeArgs EncodeArgs(const FloatArray& centers, int64_t dim, float threshold, int32_t eta_dim,
                        int32_t max_rounds) {
  if (centers.ndim() != 3 || centers.shape(1) != 16 || centers.shape(0) * centers.shape(2) != dim)
    throw std::invalid_argument("centers must have shape (num_blocks, 16, dims_per_block) covering every dimension");
  AhEncodeArgs a;
  a.num_blocks = static_cast<int32_t>(centers.shape(0));
  a.dims_per_block = static_cast<int32_t>(centers.shape(2));
  a.centers = centers.data();
  a.threshold = threshold;
  a.eta_dim = eta_dim;
  a.max_rounds = max_rounds;
  return a;
}

Uint8Array Encoded(AhEncodeArgs& a, int num_threads, const std::string& simd_level) {
  const DenseKernels& kernels = DenseKernelsFor(LevelOrActive(simd_level));
  Uint8Array codes({a.n, int64_t{a.num_blocks}});
  a.codes = codes.mutable_data();
  Interruptible([&] { AhEncode(a, kernels, num_threads); });
  return codes;
}

// Anisotropic PQ codes [n][num_blocks] of residuals under centers
// [num_blocks][16][dims_per_block] (see quantization/ah_encode.h).
Uint8Array AhEncodePy(FloatArray residuals, FloatArray originals, FloatArray centers, float threshold,
                      int32_t eta_dim, int32_t max_rounds, int num_threads, const std::string& simd_level) {
  if (residuals.ndim() != 2 || originals.ndim() != 2 || residuals.shape(0) != originals.shape(0) ||
      residuals.shape(1) != originals.shape(1))
    throw std::invalid_argument("residuals and originals must be 2-D arrays of the same shape");
  AhEncodeArgs a = EncodeArgs(centers, residuals.shape(1), threshold, eta_dim, max_rounds);
  a.residuals = residuals.data();
  a.originals = originals.data();
  a.n = residuals.shape(0);
  return Encoded(a, num_threads, simd_level);
}

// AH codes of copies of stored points (quantization/ah_encode.h): row i is x[points[i]]
// with residual x[points[i]] - leaf_centers[leaves[i]]; no residual rows in Python.
Uint8Array AhEncodeCopiesPy(FloatArray x, Int64Array points, FloatArray leaf_centers, Int64Array leaves,
                            FloatArray centers, float threshold, int32_t eta_dim, int32_t max_rounds,
                            int num_threads, const std::string& simd_level) {
  if (x.ndim() != 2 || leaf_centers.ndim() != 2 || leaf_centers.shape(1) != x.shape(1) || leaf_centers.shape(0) < 1)
    throw std::invalid_argument("x (n, d) and leaf_centers (L, d) must be 2-D with the same d, L >= 1");
  if (points.ndim() != 1 || leaves.ndim() != 1 || points.shape(0) != leaves.shape(0))
    throw std::invalid_argument("points and leaves must be 1-D of the same length");
  AhEncodeArgs a = EncodeArgs(centers, x.shape(1), threshold, eta_dim, max_rounds);
  const int64_t count = points.shape(0);
  for (int64_t i = 0; i < count; ++i) {
    if (points.data()[i] < 0 || points.data()[i] >= x.shape(0)) throw std::invalid_argument("point out of range");
    if (leaves.data()[i] < 0 || leaves.data()[i] >= leaf_centers.shape(0))
      throw std::invalid_argument("leaf out of range");
  }
  a.residuals = nullptr;
  a.originals = x.data();
  a.n = count;
  a.points = points.data();
  a.leaf_centers = leaf_centers.data();
  a.leaves = leaves.data();
  return Encoded(a, num_threads, simd_level);
}

// Sums and counts of the residual blocks per AH center (quantization/codebook_update.h):
// x [n][dim], codes [n][num_blocks] -> (float64 [num_blocks][16][dims_per_block], int64 [num_blocks][16]).
py::tuple BlockCenterSumsPy(FloatArray x, Uint8Array codes, int32_t dims_per_block, int num_threads) {
  if (x.ndim() != 2 || codes.ndim() != 2 || x.shape(0) != codes.shape(0))
    throw std::invalid_argument("x and codes must be 2-D arrays with the same number of rows");
  if (dims_per_block < 1 || x.shape(1) != codes.shape(1) * dims_per_block)
    throw std::invalid_argument("x must have num_blocks * dims_per_block columns");
  BlockCenterSumsArgs a;
  a.x = x.data();
  a.codes = codes.data();
  a.n = x.shape(0);
  a.num_blocks = static_cast<int32_t>(codes.shape(1));
  a.dims_per_block = dims_per_block;
  py::array_t<double> sums({int64_t{a.num_blocks}, int64_t{16}, int64_t{dims_per_block}});
  Int64Array counts({int64_t{a.num_blocks}, int64_t{16}});
  a.sums = sums.mutable_data();
  a.counts = counts.mutable_data();
  Interruptible([&] { BlockCenterSums(a, num_threads); });
  return py::make_tuple(sums, counts);
}

// k-means' update step (quantization/codebook_update.h): x [n][dim], labels [n]
// -> (float32 [num_centers][dim] sums, int64 [num_centers] counts).
py::tuple CenterSumsPy(FloatArray x, Int64Array labels, int64_t num_centers, int num_threads) {
  if (x.ndim() != 2 || labels.ndim() != 1 || labels.shape(0) != x.shape(0))
    throw std::invalid_argument("x must be 2-D and labels 1-D with a label per row");
  if (num_centers < 1) throw std::invalid_argument("num_centers must be >= 1");
  FloatArray sums({num_centers, x.shape(1)});
  Int64Array counts(num_centers);
  const CenterSumsArgs a{x.data(), labels.data(), x.shape(0), static_cast<int32_t>(x.shape(1)), num_centers,
                         sums.mutable_data(), counts.mutable_data()};
  Interruptible([&] { CenterSums(a, num_threads); });
  return py::make_tuple(sums, counts);
}

// |centers[leaf] + decoded codes|^2 per row (quantization/reconstruction.h): centers
// [L][B * dpb], leaves [n], codes [n][B], codebooks [B][16][dpb] -> float64 [n].
py::array_t<double> ReconstructedNorm2Py(FloatArray centers, Int64Array leaves, Uint8Array codes,
                                         FloatArray codebooks, int num_threads) {
  if (codebooks.ndim() != 3 || codebooks.shape(1) != 16 || codebooks.shape(2) < 1)
    throw std::invalid_argument("codebooks must have shape (num_blocks, 16, dims_per_block)");
  if (codes.ndim() != 2 || codes.shape(1) != codebooks.shape(0))
    throw std::invalid_argument("codes must have shape (n, num_blocks)");
  if (leaves.ndim() != 1 || leaves.shape(0) != codes.shape(0))
    throw std::invalid_argument("leaves must have shape (n,)");
  if (centers.ndim() != 2 || centers.shape(0) < 1 || centers.shape(1) != codebooks.shape(0) * codebooks.shape(2))
    throw std::invalid_argument("centers must have shape (L, num_blocks * dims_per_block), L >= 1");
  ReconstructedNormArgs a;
  a.centers = centers.data();
  a.num_centers = centers.shape(0);
  a.leaves = leaves.data();
  a.codes = codes.data();
  a.n = codes.shape(0);
  a.num_blocks = static_cast<int32_t>(codebooks.shape(0));
  a.dims_per_block = static_cast<int32_t>(codebooks.shape(2));
  a.codebooks = codebooks.data();
  py::array_t<double> out(a.n);
  a.out = out.mutable_data();
  Interruptible([&] { ReconstructedNorm2(a, num_threads); });
  return out;
}

// SoarAssign over x [n][d] and centers [L][d] (quantization/soar.h): the spill
// center of every point into secondary [n]; with primary nullptr, also each
// point's nearest center into nearest [n].
void RunSoarAssign(const FloatArray& x, const FloatArray& centers, const int64_t* primary, float lambda,
                   int num_threads, const std::string& simd_level, int32_t* secondary, int32_t* nearest) {
  if (x.ndim() != 2 || centers.ndim() != 2 || x.shape(1) != centers.shape(1) || centers.shape(0) < 1)
    throw std::invalid_argument("x (n, d) and centers (L, d) must be 2-D with the same d");
  const int64_t num_centers = centers.shape(0);
  const int32_t dim = static_cast<int32_t>(x.shape(1));
  DenseView cv;
  cv.type = DenseType::kFloat32;
  cv.n = num_centers;
  cv.dim = dim;
  std::vector<uint8_t> panels(cv.num_panels() * PanelBytes(DenseType::kFloat32, dim));
  std::vector<float> bias(cv.num_panels() * kPanelWidth);
  SoarArgs a{x.data(), x.shape(0), centers.data(), cv, primary, lambda, secondary, nearest};
  const DenseKernels& kernels = DenseKernelsFor(LevelOrActive(simd_level));
  const float* cp = centers.data();
  Interruptible([&] {
    DensePointArrays out;
    out.bias = bias.data();
    // Packed for squared L2, as an exact search of the centers packs them (training.assign).
    PackDense(cp, num_centers, dim, DenseType::kFloat32, true, panels.data(), out, num_threads);
    a.center_panels.panels = panels.data();
    a.center_panels.bias = bias.data();
    SoarAssign(a, kernels, num_threads);
  });
}

// primary [n] given -> int32 [n] spill centers (equal to primary where not spilled).
Int32Array SoarAssignPy(FloatArray x, FloatArray centers, Int64Array primary, float lambda, int num_threads,
                        const std::string& simd_level) {
  if (primary.ndim() != 1 || x.ndim() != 2 || primary.shape(0) != x.shape(0))
    throw std::invalid_argument("primary must have shape (n,)");
  Int32Array secondary(x.shape(0));
  RunSoarAssign(x, centers, primary.data(), lambda, num_threads, simd_level, secondary.mutable_data(), nullptr);
  return secondary;
}

// -> (int32 [n] nearest centers, int32 [n] spill centers): both leaves of every point
// from one pass over the centers.
py::tuple NearestAndSpillPy(FloatArray x, FloatArray centers, float lambda, int num_threads,
                            const std::string& simd_level) {
  const int64_t n = x.ndim() == 2 ? x.shape(0) : 0;
  Int32Array nearest(n), secondary(n);
  RunSoarAssign(x, centers, nullptr, lambda, num_threads, simd_level, secondary.mutable_data(),
                nearest.mutable_data());
  return py::make_tuple(nearest, secondary);
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

// Rows checked as the engine checks queries (search/metric.h).
void CheckRowsPy(FloatArray x, const std::string& metric, const std::string& what) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be 2-D");
  const float* xp = x.data();
  const int64_t n = x.shape(0);
  const int32_t dim = static_cast<int32_t>(x.shape(1));
  const Metric m = ParseMetric(metric);
  py::gil_scoped_release release;
  CheckRows(xp, n, dim, m, what.c_str());
}

FloatArray NormalizedRowsPy(FloatArray x, const std::string& what) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be 2-D");
  const int64_t n = x.shape(0);
  const int32_t dim = static_cast<int32_t>(x.shape(1));
  FloatArray out({n, int64_t{dim}});
  const float* xp = x.data();
  float* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    std::vector<float> normalized;
    const float* rows = PrepareRows(xp, n, dim, Metric::kCosine, what.c_str(), &normalized);
    std::copy(rows, rows + n * dim, op);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "annlib C++ core: SIMD kernels and search drivers";
  m.def("simd_level", []() { return std::string(SimdLevelName(ActiveLevel())); },
        "SIMD level in use (best supported, lowered by ANNLIB_SIMD_LEVEL).");
  m.def("max_simd_level", []() { return std::string(SimdLevelName(MaxSupportedLevel())); });
  m.def("amx_usable", &AmxUsable, "whether bfloat16 brute force can run on AMX tiles here");
  m.def("available_cores", &AvailableCores,
        "the cores this process may run on (its CPU affinity), which num_threads=0 uses");
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
        py::arg("num_threads") = 0, py::arg("simd_level") = "");
  m.def("ah_encode_copies", &AhEncodeCopiesPy, py::arg("x").noconvert(), py::arg("points").noconvert(),
        py::arg("leaf_centers").noconvert(), py::arg("leaves").noconvert(), py::arg("centers").noconvert(),
        py::arg("threshold"), py::arg("eta_dim"), py::arg("max_rounds") = 10, py::arg("num_threads") = 0,
        py::arg("simd_level") = "");
  m.def("block_center_sums", &BlockCenterSumsPy, py::arg("x").noconvert(), py::arg("codes").noconvert(),
        py::arg("dims_per_block"), py::arg("num_threads") = 0);
  m.def("center_sums", &CenterSumsPy, py::arg("x").noconvert(), py::arg("labels").noconvert(),
        py::arg("num_centers"), py::arg("num_threads") = 0);
  m.def("reconstructed_norm2", &ReconstructedNorm2Py, py::arg("centers").noconvert(), py::arg("leaves").noconvert(),
        py::arg("codes").noconvert(), py::arg("codebooks").noconvert(), py::arg("num_threads") = 0);
  m.def("anisotropic_eta", &AnisotropicEta, py::arg("threshold"), py::arg("norm2"), py::arg("eta_dim"));
  m.def("soar_assign", &SoarAssignPy, py::arg("x").noconvert(), py::arg("centers").noconvert(),
        py::arg("primary").noconvert(), py::arg("soar_lambda"), py::arg("num_threads") = 0,
        py::arg("simd_level") = "");
  m.def("nearest_and_spill", &NearestAndSpillPy, py::arg("x").noconvert(), py::arg("centers").noconvert(),
        py::arg("soar_lambda"), py::arg("num_threads") = 0, py::arg("simd_level") = "");
  m.def("pack_lut16_codes", &PackLut16CodesPy, py::arg("codes").noconvert());
  annlib_bindings::RegisterDenseIndex(m);
  annlib_bindings::RegisterPartitionedIndex(m);
  annlib_bindings::RegisterTesting(m);
  annlib_bindings::RegisterInterrupts(m);
  annlib_bindings::RegisterMaxSimScorer(m);
  m.attr("FORMAT_VERSION") = kFormatVersion;
  m.attr("OLDEST_FORMAT_VERSION") = kOldestFormatVersion;
  m.attr("LUT16_GROUP") = kLut16Group;
  m.attr("PANEL_WIDTH") = kPanelWidth;
  m.def("check_rows", &CheckRowsPy, py::arg("x").noconvert(), py::arg("metric"), py::arg("what"),
        "raises ValueError naming the first row with NaN/inf, an overflowing squared norm, or (cosine) all zeros");
  m.def("normalized_rows", &NormalizedRowsPy, py::arg("x").noconvert(), py::arg("what"),
        "rows scaled to unit length (cosine), after check_rows");
}
