#include "partitioned_store.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "../quantization/lut16_tables.h"  // PaddedBlocks

namespace annlib {

namespace {

// The same words as the Python searchers' delete() (_validate.not_held_error).
std::string DeleteMissingMessage(int64_t first, int64_t missing, int64_t count) {
  return "delete: the index holds no point with id " + std::to_string(first) + " (" + std::to_string(missing) +
         " of the " + std::to_string(count) + " ids are not in the index); nothing was deleted";
}

}  // namespace

// ---- PartitionedStore ------------------------------------------------------

PartitionedStore::PartitionedStore(const StoreArrays& base) : base_(base) {
  group_bytes_ = int64_t{PaddedBlocks(base.num_blocks)} * 16;
  has_bias_ = base.slot_bias != nullptr;
  has_rows_ = base.rows != nullptr;
  const int32_t num_leaves = base.num_leaves;
  leaves_.resize(num_leaves);
  owned_.resize(num_leaves);
  is_owned_.assign(num_leaves, 0);
  leaf_live_.assign(num_leaves, 0);
  row_leaf_.assign(base.num_rows * 2, -1);
  for (int32_t l = 0; l < num_leaves; ++l) {
    const int64_t begin = base.leaf_starts[l], end = base.leaf_starts[l + 1];
    LeafData& leaf = leaves_[l];
    leaf.codes = base.codes + begin / kLut16Group * group_bytes_;
    leaf.ids = base.slot_ids + begin;
    leaf.bias = has_bias_ ? base.slot_bias + begin : nullptr;
    leaf.size = end - begin;
    for (int64_t s = begin; s < end; ++s) {
      const int32_t row = base.slot_ids[s];
      if (row < 0) continue;
      ++leaf_live_[l];
      int32_t* where = &row_leaf_[2 * int64_t{row}];
      where[where[0] < 0 ? 0 : 1] = l;
    }
  }
  rows_.Reset(base.ids, base.num_rows);
  row_added_.assign(base.num_rows, 0);
  for (int64_t r = 0; r < base.num_rows; ++r) {
    if (base.row_added != nullptr && base.row_added[r]) {
      row_added_[r] = 1;
      ++added_;
    }
  }
}

void PartitionedStore::FillView(PartitionedView* v) const {
  v->leaves = leaves_.data();
  v->num_points = num_rows();
  if (has_rows_) {
    // rows == nullptr means "no reorder copy" to the search: an empty one
    // (every point deleted) must still be non-null.
    static const uint64_t kEmpty[8] = {};
    auto or_empty = [](const void* p) { return p != nullptr ? p : static_cast<const void*>(kEmpty); };
    v->rows = or_empty(rows());
    v->row_bias = static_cast<const float*>(or_empty(row_bias()));
    v->row_scale = static_cast<const float*>(or_empty(row_scale()));
    v->row_offset = static_cast<const float*>(or_empty(row_offset()));
  }
}

int64_t PartitionedStore::RowBytes() const { return base_.row_stride * RowElementBytes(base_.row_type); }

void PartitionedStore::Own(int32_t l) {
  if (is_owned_[l]) return;
  LeafData& leaf = leaves_[l];
  OwnedLeaf& o = owned_[l];
  o.codes.assign(leaf.codes, leaf.codes + leaf.size / kLut16Group * group_bytes_);
  o.ids.assign(leaf.ids, leaf.ids + leaf.size);
  if (has_bias_) o.bias.assign(leaf.bias, leaf.bias + leaf.size);
  is_owned_[l] = 1;
  Refresh(l);
}

void PartitionedStore::Refresh(int32_t l) {
  OwnedLeaf& o = owned_[l];
  LeafData& leaf = leaves_[l];
  leaf.codes = o.codes.data();
  leaf.ids = o.ids.data();
  leaf.bias = has_bias_ ? o.bias.data() : nullptr;
  leaf.size = static_cast<int64_t>(o.ids.size());
}

void PartitionedStore::OwnRows() {
  if (rows_owned_ || !has_rows_) return;
  const int64_t n = num_rows();
  const uint8_t* src = static_cast<const uint8_t*>(base_.rows);
  reorder_.assign(src, src + n * RowBytes());
  row_bias_.assign(base_.row_bias, base_.row_bias + n);
  if (base_.row_type == DenseType::kInt8) {
    row_scale_.assign(base_.row_scale, base_.row_scale + n);
    row_offset_.assign(base_.row_offset, base_.row_offset + n);
  }
  rows_owned_ = true;
}

// A slot of the leaf holding no point (a hole left by a delete, or padding),
// or a new group of 32 empty slots when the leaf is full.
int64_t PartitionedStore::FreeSlot(int32_t l) {
  Own(l);
  OwnedLeaf& o = owned_[l];
  const auto it = std::find(o.ids.begin(), o.ids.end(), -1);
  if (it != o.ids.end()) return it - o.ids.begin();
  const int64_t slot = static_cast<int64_t>(o.ids.size());
  o.codes.resize(o.codes.size() + group_bytes_, 0);
  o.ids.resize(o.ids.size() + kLut16Group, -1);
  if (has_bias_) o.bias.resize(o.bias.size() + kLut16Group, 0.0f);
  Refresh(l);
  return slot;
}

// Writes a point's codes, row and slot term into a slot of an owned leaf.
void PartitionedStore::WriteSlot(int32_t l, int64_t slot, int32_t row, const uint8_t* code, const float* bias) {
  OwnedLeaf& o = owned_[l];
  WriteLut16Codes(o.codes.data() + slot / kLut16Group * group_bytes_, static_cast<int>(slot % kLut16Group), code,
                  base_.num_blocks);
  o.ids[slot] = row;
  if (has_bias_) o.bias[slot] = bias != nullptr ? *bias : 0.0f;
  ++leaf_live_[l];
}

void PartitionedStore::RemoveRow(int32_t row) {
  for (int c = 0; c < 2; ++c) {
    const int32_t l = row_leaf_[2 * int64_t{row} + c];
    if (l < 0) continue;
    Own(l);
    ScanVector<int32_t>& ids = owned_[l].ids;
    const auto it = std::find(ids.begin(), ids.end(), row);
    if (it != ids.end()) {
      *it = -1;
      --leaf_live_[l];
    }
    row_leaf_[2 * int64_t{row} + c] = -1;
  }
  rows_.Kill(row);
  if (row_added_[row]) --added_;
  row_added_[row] = 0;
}

void PartitionedStore::Upsert(const NewPoints& p) {
  std::unordered_set<int64_t> seen;
  seen.reserve(p.count * 2);
  for (int64_t i = 0; i < p.count; ++i) {
    if (p.ids[i] < 0) throw std::invalid_argument("ids must be >= 0, got " + std::to_string(p.ids[i]));
    if (!seen.insert(p.ids[i]).second)
      throw std::invalid_argument("id " + std::to_string(p.ids[i]) + " appears more than once in one call");
    for (int c = 0; c < 2; ++c)
      if (p.leaf[c] != nullptr && (p.leaf[c][i] < -1 || p.leaf[c][i] >= num_leaves()))
        throw std::invalid_argument("leaf out of range");
  }
  if (num_rows() + p.count > INT32_MAX) throw std::length_error("an index holds at most 2^31 - 1 rows");
  ++version_;
  OwnRows();
  const int64_t row_bytes = has_rows_ ? RowBytes() : 0;
  for (int64_t i = 0; i < p.count; ++i) {
    const int32_t old = rows_.RowOf(p.ids[i]);
    if (old >= 0) RemoveRow(old);
    const int32_t row = rows_.Append(p.ids[i]);
    row_added_.push_back(1);
    row_leaf_.push_back(-1);
    row_leaf_.push_back(-1);
    ++added_;
    if (has_rows_) {
      const uint8_t* src = static_cast<const uint8_t*>(p.rows) + i * row_bytes;
      reorder_.insert(reorder_.end(), src, src + row_bytes);
      row_bias_.push_back(p.row_bias[i]);
      if (base_.row_type == DenseType::kInt8) {
        row_scale_.push_back(p.row_scale[i]);
        row_offset_.push_back(p.row_offset[i]);
      }
    }
    for (int c = 0; c < 2; ++c) {
      if (p.leaf[c] == nullptr || p.leaf[c][i] < 0) continue;
      const int32_t l = p.leaf[c][i];
      if (c == 1 && l == p.leaf[0][i]) continue;  // not spilled
      const int64_t slot = FreeSlot(l);
      WriteSlot(l, slot, row, p.codes[c] + i * base_.num_blocks, p.bias[c] != nullptr ? p.bias[c] + i : nullptr);
      row_leaf_[2 * int64_t{row} + c] = l;
    }
  }
}

void PartitionedStore::Remove(const int64_t* ids, int64_t count) {
  std::unordered_set<int64_t> seen;
  seen.reserve(count * 2);
  int64_t missing = 0, first_missing = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (rows_.RowOf(ids[i]) < 0 && missing++ == 0) first_missing = ids[i];
    if (!seen.insert(ids[i]).second)
      throw std::invalid_argument("id " + std::to_string(ids[i]) + " appears more than once in one call");
  }
  if (missing > 0)
    throw std::invalid_argument(DeleteMissingMessage(first_missing, missing, count));
  ++version_;
  for (int64_t i = 0; i < count; ++i) RemoveRow(rows_.RowOf(ids[i]));
}

bool PartitionedStore::CompactionDue() const {
  return dead_rows() > 0 && dead_rows() * 4 >= num_rows();
}

void PartitionedStore::Compact() {
  ++version_;
  const int64_t n = num_rows();
  // New row numbers: live rows keep their order.
  std::vector<int32_t> renumber(n, -1);
  int32_t next = 0;
  for (int64_t r = 0; r < n; ++r)
    if (rows_.IdOf(r) >= 0) renumber[r] = next++;
  const bool renumbered = next != n;
  if (renumbered) {
    OwnRows();
    const int64_t row_bytes = has_rows_ ? RowBytes() : 0;
    for (int64_t r = 0; r < n; ++r) {
      const int32_t to = renumber[r];
      if (to < 0 || to == r) continue;
      row_added_[to] = row_added_[r];
      row_leaf_[2 * int64_t{to}] = row_leaf_[2 * r];
      row_leaf_[2 * int64_t{to} + 1] = row_leaf_[2 * r + 1];
      if (has_rows_) {
        std::memmove(reorder_.data() + to * row_bytes, reorder_.data() + r * row_bytes, row_bytes);
        row_bias_[to] = row_bias_[r];
        if (base_.row_type == DenseType::kInt8) {
          row_scale_[to] = row_scale_[r];
          row_offset_[to] = row_offset_[r];
        }
      }
    }
    rows_.Renumber(renumber, next);
    row_added_.resize(next);
    row_leaf_.resize(2 * int64_t{next});
    if (has_rows_) {
      reorder_.resize(next * row_bytes);
      reorder_.shrink_to_fit();
      row_bias_.resize(next);
      row_scale_.resize(base_.row_type == DenseType::kInt8 ? next : 0);
      row_offset_.resize(base_.row_type == DenseType::kInt8 ? next : 0);
    }
  }
  for (int32_t l = 0; l < num_leaves(); ++l) {
    const int64_t packed = (leaf_live_[l] + kLut16Group - 1) / kLut16Group * kLut16Group;
    if (!renumbered && packed == leaves_[l].size) continue;
    Own(l);
    OwnedLeaf& o = owned_[l];
    // Live slots move to the front in order; a slot's nibbles are its own, so
    // writing slot `to` <= `from` never clobbers a slot still to be read.
    std::vector<uint8_t> code(base_.num_blocks);
    int64_t to = 0;
    for (int64_t from = 0; from < static_cast<int64_t>(o.ids.size()); ++from) {
      const int32_t row = o.ids[from];
      if (row < 0) continue;
      if (to != from) {
        ReadLut16Codes(o.codes.data() + from / kLut16Group * group_bytes_, static_cast<int>(from % kLut16Group),
                       base_.num_blocks, code.data());
        const float bias = has_bias_ ? o.bias[from] : 0.0f;
        o.ids[from] = -1;
        --leaf_live_[l];  // WriteSlot counts it again
        WriteSlot(l, to, row, code.data(), has_bias_ ? &bias : nullptr);
      }
      o.ids[to] = renumber[row];
      ++to;
    }
    o.codes.resize(packed / kLut16Group * group_bytes_);
    o.ids.resize(packed);
    std::fill(o.ids.begin() + to, o.ids.end(), -1);
    if (has_bias_) o.bias.resize(packed);
    o.codes.shrink_to_fit();
    o.ids.shrink_to_fit();
    o.bias.shrink_to_fit();
    Refresh(l);
  }
}

}  // namespace annlib
