// annlib._core.MaxSimScorer: index/maxsim_index.h (late-interaction scoring)
// for Python. The token arrays are held here so that the engine's pointers
// stay valid.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "../index/maxsim_index.h"
#include "common.h"

namespace annlib_bindings {
namespace {

using namespace annlib;

class PyMaxSimScorer {
 public:
  PyMaxSimScorer(py::array tokens, py::object token_scale, Int64Array offsets, const std::string& simd_level)
      : tokens_(tokens), offsets_(offsets) {
    if (tokens.ndim() != 2 || !(tokens.flags() & py::array::c_style))
      throw std::invalid_argument("tokens must be a C-contiguous (num_tokens, dim) array");
    MaxSimArrays a;
    if (tokens.dtype().is(py::dtype("float16"))) {
      a.type = TokenType::kFloat16;
    } else if (tokens.dtype().is(py::dtype::of<int8_t>())) {
      a.type = TokenType::kInt8;
    } else {
      throw std::invalid_argument("tokens must be float16 or int8");
    }
    if (!token_scale.is_none()) {
      scale_ = token_scale.cast<FloatArray>();
      if (scale_.ndim() != 1) throw std::invalid_argument("token_scale must be float32 with one entry per token");
      a.token_scale = scale_.data();
      a.num_scales = scale_.shape(0);
    }
    if (offsets.ndim() != 1) throw std::invalid_argument("offsets must be 1-D with >= 2 entries");
    a.tokens = tokens.data();
    a.num_tokens = tokens.shape(0);
    a.dim = static_cast<int32_t>(tokens.shape(1));
    a.offsets = offsets.data();
    a.num_offsets = offsets.shape(0);
    index_ = std::make_unique<MaxSimIndex>(a, LevelOrActive(simd_level));
  }

  FloatArray Scores(FloatArray query_tokens, Int64Array doc_ids, int num_threads) const {
    if (query_tokens.ndim() != 2 || query_tokens.shape(1) != index_->dim() || query_tokens.shape(0) < 1)
      throw std::invalid_argument("query_tokens must have shape (m >= 1, dim)");
    if (doc_ids.ndim() != 1) throw std::invalid_argument("doc_ids must be 1-D");
    FloatArray out(doc_ids.shape(0));
    const float* q = query_tokens.data();
    const int32_t m = static_cast<int32_t>(query_tokens.shape(0));
    const int64_t* ids = doc_ids.data();
    const int64_t count = doc_ids.shape(0);
    float* o = out.mutable_data();
    Interruptible([&] { index_->Scores(q, m, ids, count, o, num_threads); });
    return out;
  }

  std::string simd_level() const { return SimdLevelName(index_->level()); }

 private:
  py::array tokens_;
  FloatArray scale_;
  Int64Array offsets_;
  std::unique_ptr<MaxSimIndex> index_;
};

}  // namespace

void RegisterMaxSimScorer(py::module_& m) {
  py::class_<PyMaxSimScorer>(m, "MaxSimScorer")
      .def(py::init<py::array, py::object, Int64Array, const std::string&>(), py::arg("tokens"),
           py::arg("token_scale"), py::arg("offsets").noconvert(), py::arg("simd_level") = "")
      .def("scores", &PyMaxSimScorer::Scores, py::arg("query_tokens").noconvert(), py::arg("doc_ids").noconvert(),
           py::arg("num_threads") = 1)
      .def_property_readonly("simd_level", &PyMaxSimScorer::simd_level);
}

}  // namespace annlib_bindings
