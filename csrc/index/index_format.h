// The saved format of the indexes, defined once: the arrays each kind holds,
// with their element types, and the format version. annlib/io.py writes each
// array as <name>.npy beside manifest.json (which records the version); a
// build hands the same arrays over in memory. The engine reads them as spans
// over buffers its caller keeps alive (they may be read-only memory maps).
//
// Version 2 (this release) against version 1 (annlib 0.1.0):
//   - a tree's centroids are int8 panels, screened and rescored from float32
//     centroid_rows (version 1 indexes saved before that carry float32 panels
//     and no centroid_rows, and are scored exactly from the panels);
//   - float32 brute force stores norms (version 1 may lack them: its screened
//     scans then rescore the 2k best bin winners);
//   - tuned search defaults live in config.json only (version 1's
//     search_params.json is applied on load).
// Shapes are checked by the index that reads them (index/*_index.cpp).
#pragma once
#include <cstdint>

namespace annlib {

constexpr int32_t kFormatVersion = 2;
constexpr int32_t kOldestFormatVersion = 1;

// A run of elements; absent when data == nullptr.
template <class T>
struct Span {
  using value_type = T;
  const T* data = nullptr;
  int64_t size = 0;
  bool present() const { return data != nullptr; }
  const T& operator[](int64_t i) const { return data[i]; }
};

// Raw bytes of an array whose element type the config decides (panels, rows).
struct Bytes {
  const void* data = nullptr;
  int64_t size = 0;  // in bytes
  bool present() const { return data != nullptr; }
};

// Brute force (index/dense_index.h).
struct DenseArrays {
  Span<int64_t> meta;             // [n, dim]
  Bytes panels;                   // kernels/dense_scan.h layout of the dtype
  Span<float> bias;               // [num_panels * 32]: 0, or -|x|^2/2 for squared L2; -inf padding
  Span<float> norms;              // float32: |x| per point (padding 0)
  Span<float> scale, offset, scaled_sums;  // int8: affine codes per point
  Span<int32_t> sums;                      // int8
  Span<int64_t> ids;              // user id of each point (absent: 0..n-1)
};

template <class F>
void ForEachArray(DenseArrays& a, F&& f) {
  f("meta", a.meta);
  f("panels", a.panels);
  f("bias", a.bias);
  f("norms", a.norms);
  f("scale", a.scale);
  f("offset", a.offset);
  f("scaled_sums", a.scaled_sums);
  f("sums", a.sums);
  f("ids", a.ids);
}

// The quantized partitioning index (index/partitioned_index.h).
struct PartitionedArrays {
  Span<int64_t> meta;                       // [n rows, dim, num_blocks, dims_per_block]
  Span<float> centroids;                    // [num_leaves][dim] (training; rebalance, placing points)
  Bytes centroid_panels;                    // int8 panels (version 1: float32)
  Span<float> centroid_bias;                // [panels * 32]
  Span<float> centroid_scale, centroid_offset, centroid_scaled_sums;  // int8 panels
  Span<int32_t> centroid_sums;                                        // int8 panels
  Span<float> centroid_rows;                // [num_leaves][RowStride(dim)] exact rescoring
  Span<float> centroid_row_bias;            // [num_leaves]
  Span<int64_t> leaf_starts;                // [num_leaves + 1] slot offsets, multiples of 32
  Span<int32_t> slot_ids;                   // [slots] row of each slot, -1 = empty
  Span<uint8_t> codes;                      // [slots / 32][PaddedBlocks][16] LUT16 codes
  Span<float> slot_bias;                    // [slots] squared L2: per-slot term
  Span<float> lut_centers;                  // [num_blocks][dims_per_block][16]
  Span<int64_t> ids;                        // [rows] user ids (absent: 0..n-1)
  Span<uint8_t> row_added;                  // [rows] added since training
  Bytes rows;                               // [rows][RowStride(dim)] reorder copy
  Span<float> row_bias, row_scale, row_offset;  // [rows]
  Span<double> leaf_cv_at_training;         // [1] health() baseline
};

template <class F>
void ForEachArray(PartitionedArrays& a, F&& f) {
  f("meta", a.meta);
  f("centroids", a.centroids);
  f("centroid_panels", a.centroid_panels);
  f("centroid_bias", a.centroid_bias);
  f("centroid_scale", a.centroid_scale);
  f("centroid_offset", a.centroid_offset);
  f("centroid_scaled_sums", a.centroid_scaled_sums);
  f("centroid_sums", a.centroid_sums);
  f("centroid_rows", a.centroid_rows);
  f("centroid_row_bias", a.centroid_row_bias);
  f("leaf_starts", a.leaf_starts);
  f("slot_ids", a.slot_ids);
  f("codes", a.codes);
  f("slot_bias", a.slot_bias);
  f("lut_centers", a.lut_centers);
  f("ids", a.ids);
  f("row_added", a.row_added);
  f("rows", a.rows);
  f("row_bias", a.row_bias);
  f("row_scale", a.row_scale);
  f("row_offset", a.row_offset);
  f("leaf_cv_at_training", a.leaf_cv_at_training);
}

}  // namespace annlib
