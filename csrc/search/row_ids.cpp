#include "row_ids.h"

#include "../util/portable.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace annlib {

// ---- IdMap -----------------------------------------------------------------

int32_t IdMap::Find(int64_t id) const {
  if (id < 0) return -1;
  if (dense_mode_) return id < static_cast<int64_t>(dense_.size()) ? dense_[id] : -1;
  const auto it = hash_.find(id);
  return it == hash_.end() ? -1 : it->second;
}

void IdMap::Set(int64_t id, int32_t row) {
  if (dense_mode_ && id >= static_cast<int64_t>(dense_.size())) {
    // Dense while the vector stays within a few entries per point.
    if (id < 4 * (count_ + 1) + (int64_t{1} << 16)) {
      dense_.resize(std::max<int64_t>(id + 1, static_cast<int64_t>(dense_.size()) * 3 / 2), -1);
    } else {
      MoveToHash();
    }
  }
  if (dense_mode_) {
    if (dense_[id] < 0) ++count_;
    dense_[id] = row;
  } else {
    count_ += hash_.insert_or_assign(id, row).second ? 1 : 0;
  }
}

void IdMap::Erase(int64_t id) {
  if (dense_mode_) {
    if (id >= 0 && id < static_cast<int64_t>(dense_.size()) && dense_[id] >= 0) {
      dense_[id] = -1;
      --count_;
    }
  } else {
    count_ -= static_cast<int64_t>(hash_.erase(id));
  }
}

void IdMap::Clear() {
  dense_mode_ = true;
  count_ = 0;
  dense_.clear();
  hash_.clear();
}

void IdMap::MoveToHash() {
  hash_.reserve(count_ * 2);
  for (int64_t id = 0; id < static_cast<int64_t>(dense_.size()); ++id)
    if (dense_[id] >= 0) hash_.emplace(id, dense_[id]);
  dense_.clear();
  dense_.shrink_to_fit();
  dense_mode_ = false;
}

// ---- RowIds -----------------------------------------------------------------

void RowIds::Reset(const int64_t* ids, int64_t n) {
  row_ids_.resize(n);
  map_.Clear();
  bool identity = true;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t id = ids != nullptr ? ids[r] : r;
    if (id < 0) throw std::invalid_argument("ids must be >= 0");
    if (map_.Find(id) >= 0) throw std::invalid_argument("ids hold " + std::to_string(id) + " more than once");
    map_.Set(id, static_cast<int32_t>(r));
    row_ids_[r] = id;
    identity &= id == r;
  }
  identity_ = identity;
  live_ = n;
  live_bits_.assign((n + 63) / 64 + 1, 0);
  for (int64_t r = 0; r < n; ++r) SetLive(r, true);
}

void RowIds::SetLive(int64_t row, bool live) {
  if (row >> 6 >= static_cast<int64_t>(live_bits_.size())) live_bits_.resize((row >> 6) * 3 / 2 + 2, 0);
  const uint64_t bit = uint64_t{1} << (row & 63);
  live_bits_[row >> 6] = live ? (live_bits_[row >> 6] | bit) : (live_bits_[row >> 6] & ~bit);
}

int32_t RowIds::Append(int64_t id) {
  const int32_t row = static_cast<int32_t>(num_rows());
  row_ids_.push_back(id);
  identity_ &= id == row;
  map_.Set(id, row);
  SetLive(row, true);
  ++live_;
  return row;
}

void RowIds::Kill(int32_t row) {
  map_.Erase(row_ids_[row]);
  row_ids_[row] = -1;
  identity_ = false;
  SetLive(row, false);
  --live_;
}

void RowIds::Renumber(const std::vector<int32_t>& renumber, int32_t count) {
  for (int64_t r = 0; r < static_cast<int64_t>(renumber.size()); ++r)
    if (renumber[r] >= 0) row_ids_[renumber[r]] = row_ids_[r];
  row_ids_.resize(count);
  map_.Clear();
  live_bits_.assign((int64_t{count} + 63) / 64 + 1, 0);
  identity_ = true;
  for (int32_t r = 0; r < count; ++r) {
    map_.Set(row_ids_[r], r);
    SetLive(r, true);
    identity_ &= row_ids_[r] == r;
  }
  live_ = count;
}

void RowIds::ToIds(int64_t* rows, int64_t count) const {
  if (identity_) return;  // every row r holds id r (e.g. a build without ids=)
  for (int64_t i = 0; i < count; ++i)
    if (rows[i] >= 0) rows[i] = row_ids_[rows[i]];
}

namespace {

[[noreturn]] void MaskTooShort(const IdFilter& f, int64_t id) {
  throw std::invalid_argument("a boolean mask needs an entry for every id in the index (mask[id]); it has length " +
                              std::to_string(f.mask_length) + " but the index holds id " + std::to_string(id));
}

}  // namespace

int64_t RowIds::FilterRows(const IdFilter& allow, const IdFilter& deny, std::vector<uint64_t>* bits) const {
  const int64_t n = num_rows();
  bits->assign((n + 63) / 64 + 1, 0);
  uint64_t* b = bits->data();
  // Masks are read row by row, 64 rows to a word, without branching on the
  // (unpredictable) mask values; a word's bits are built in a register.
  auto masked_word = [&](const IdFilter& f, int64_t w) {
    uint64_t word = 0;
    const int64_t end = std::min(n, (w + 1) * 64);
    for (int64_t r = w * 64; r < end; ++r) {
      const int64_t id = row_ids_[r];
      if (id < 0) continue;
      if (id >= f.mask_length) MaskTooShort(f, id);
      word |= uint64_t{f.mask[id] != 0} << (r & 63);
    }
    return word;
  };
  const int64_t words = (n + 63) / 64;
  if (allow.ids != nullptr) {
    for (int64_t i = 0; i < allow.num_ids; ++i) {
      const int32_t r = map_.Find(allow.ids[i]);
      if (r >= 0) b[r >> 6] |= uint64_t{1} << (r & 63);
    }
  } else {
    for (int64_t w = 0; w < words; ++w) b[w] = allow.mask != nullptr ? masked_word(allow, w) : live_bits_[w];
  }
  if (deny.ids != nullptr) {
    for (int64_t i = 0; i < deny.num_ids; ++i) {
      const int32_t r = map_.Find(deny.ids[i]);
      if (r >= 0) b[r >> 6] &= ~(uint64_t{1} << (r & 63));
    }
  } else if (deny.mask != nullptr) {
    for (int64_t w = 0; w < words; ++w) b[w] &= ~masked_word(deny, w);
  }
  int64_t count = 0;
  for (uint64_t w : *bits) count += PopCount64(w);
  return count;
}

std::vector<int32_t> RowIds::RowsOf(const std::vector<uint64_t>& bits, int64_t num_rows) {
  std::vector<int32_t> rows;
  for (int64_t w = 0; w < static_cast<int64_t>(bits.size()); ++w) {
    uint64_t word = bits[w];
    while (word != 0) {
      const int64_t r = w * 64 + LowestBit64(word);
      word &= word - 1;
      if (r < num_rows) rows.push_back(static_cast<int32_t>(r));
    }
  }
  return rows;
}

}  // namespace annlib
