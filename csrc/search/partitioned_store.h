// The mutable state of a quantized partitioning index: leaf slots, reorder
// rows and the maps between user ids and rows, changed by upserts, deletes
// and compaction.
//
// A build (or a load) provides the arrays of an unchanged index; they are
// never written (they may be read-only memory maps). A leaf is copied into
// storage of its own the first time an update touches it (copy-on-write per
// leaf), the reorder rows the first time a point is added.
//
// Rows: every stored point has a row (the id the search kernels see and the
// index of its reorder row). A delete tombstones the row and writes -1 into
// its slots, so scans skip it at once; a later insert reuses free slots, and
// Compact() drops dead rows and empty groups and renumbers the rest.
//
// No locking here: the owner (index/partitioned_index.h) holds a reader-writer
// lock, shared by searches and exclusive for every call that changes the store.
#pragma once
#include <cstdint>
#include <vector>

#include "../util/aligned_memory.h"
#include "partitioned_search.h"
#include "row_ids.h"

namespace annlib {

// The arrays of an unchanged index (index/index_format.h names them).
struct StoreArrays {
  int32_t num_leaves = 0;
  int32_t num_blocks = 0;            // AH blocks (codes per point)
  const int64_t* leaf_starts = nullptr;
  const uint8_t* codes = nullptr;
  const int32_t* slot_ids = nullptr;
  const float* slot_bias = nullptr;  // squared L2 only
  int64_t num_rows = 0;
  const int64_t* ids = nullptr;      // user id of each row; nullptr: 0..num_rows-1
  const uint8_t* row_added = nullptr;  // 1 = added since training; nullptr: none
  // Reorder rows (rows == nullptr: none).
  DenseType row_type = DenseType::kFloat32;
  int64_t row_stride = 0;
  const void* rows = nullptr;
  const float* row_bias = nullptr;
  const float* row_scale = nullptr;   // int8 only
  const float* row_offset = nullptr;  // int8 only
};

// Points to add, prepared outside the lock (assigned, encoded, packed).
struct NewPoints {
  int64_t count = 0;
  const int64_t* ids = nullptr;
  const int32_t* leaf[2] = {nullptr, nullptr};   // primary and SOAR leaf, -1 = none
  const uint8_t* codes[2] = {nullptr, nullptr};  // [count][num_blocks] per copy
  const float* bias[2] = {nullptr, nullptr};     // [count] per copy, squared L2 only
  const void* rows = nullptr;                    // [count][row_stride] reorder rows
  int64_t rows_bytes = 0;                        // bytes at rows (checked)
  const float* row_bias = nullptr;
  const float* row_scale = nullptr;
  const float* row_offset = nullptr;
};

class PartitionedStore {
 public:
  explicit PartitionedStore(const StoreArrays& base);

  // Points the view at the current leaves and rows (after every change).
  void FillView(PartitionedView* v) const;

  // Adds points; a point whose id exists replaces it. Ids must be unique and
  // >= 0 (checked: std::invalid_argument before anything changes).
  void Upsert(const NewPoints& points);
  // Deletes points by id; an unknown or repeated id throws
  // std::invalid_argument before anything changes.
  void Remove(const int64_t* ids, int64_t count);
  // Drops dead rows and free groups; renumbers rows.
  void Compact();
  // True once tombstones take a quarter of the rows (then calls that change
  // the index compact it before they return).
  bool CompactionDue() const;

  int64_t size() const { return rows_.live(); }
  // Changes with every upsert, delete and compaction: a row bitmask made at
  // one version is only valid at that version.
  uint64_t version() const { return version_; }
  int64_t num_rows() const { return rows_.num_rows(); }
  int64_t dead_rows() const { return num_rows() - size(); }
  int64_t added() const { return added_; }
  // Rows and their user ids (filters, id translation, live rows).
  const RowIds& row_ids() const { return rows_; }
  const std::vector<uint8_t>& row_added() const { return row_added_; }
  const LeafData& leaf(int32_t l) const { return leaves_[l]; }
  int32_t num_leaves() const { return static_cast<int32_t>(leaves_.size()); }
  int64_t LiveSlots(int32_t l) const { return leaf_live_[l]; }
  // The leaves holding a row (-1: none), its primary copy first.
  const int32_t* LeavesOf(int32_t row) const { return &row_leaf_[2 * int64_t{row}]; }
  // Reorder rows as they are now (own copy or the build's).
  const void* rows() const { return rows_owned_ ? static_cast<const void*>(reorder_.data()) : base_.rows; }
  const float* row_bias() const { return rows_owned_ ? row_bias_.data() : base_.row_bias; }
  const float* row_scale() const { return rows_owned_ ? row_scale_.data() : base_.row_scale; }
  const float* row_offset() const { return rows_owned_ ? row_offset_.data() : base_.row_offset; }

 private:
  struct OwnedLeaf {  // scanned as a build's leaves are: ScanVector (util/aligned_memory.h)
    ScanVector<uint8_t> codes;
    ScanVector<int32_t> ids;
    ScanVector<float> bias;
  };
  void Own(int32_t leaf);
  void OwnRows();
  void Refresh(int32_t leaf);
  int64_t FreeSlot(int32_t leaf);
  void WriteSlot(int32_t leaf, int64_t slot, int32_t row, const uint8_t* code, const float* bias);
  void RemoveRow(int32_t row);
  int64_t RowBytes() const;

  StoreArrays base_;
  int64_t group_bytes_ = 0;
  bool has_bias_ = false;
  bool has_rows_ = false;
  std::vector<LeafData> leaves_;
  std::vector<OwnedLeaf> owned_;
  std::vector<uint8_t> is_owned_;
  std::vector<int64_t> leaf_live_;
  RowIds rows_;
  std::vector<int32_t> row_leaf_;   // [row][2] leaves holding the row, -1 = none
  std::vector<uint8_t> row_added_;  // 1 = added since the last training
  uint64_t version_ = 0;
  int64_t added_ = 0;
  bool rows_owned_ = false;
  ScanVector<uint8_t> reorder_;     // own reorder rows, once a point was added
  ScanVector<float> row_bias_, row_scale_, row_offset_;
};

}  // namespace annlib
