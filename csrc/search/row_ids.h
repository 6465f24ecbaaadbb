// The user ids of an index's rows: row -> id, id -> row, which rows are live,
// and filters over ids turned into bitmasks over rows. Kernels and stores
// speak rows (dense int32 numbers); every result leaves the engine as ids.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace annlib {

// A filter over user ids: an id list or a boolean mask indexed by id.
struct IdFilter {
  const int64_t* ids = nullptr;
  int64_t num_ids = 0;
  const uint8_t* mask = nullptr;
  int64_t mask_length = 0;
  bool present() const { return ids != nullptr || mask != nullptr; }
};

// User id -> row. A vector indexed by id while ids stay small (the default
// ids 0..n-1), a hash map once an id is far beyond the number of points.
class IdMap {
 public:
  int32_t Find(int64_t id) const;  // -1 when absent
  void Set(int64_t id, int32_t row);
  void Erase(int64_t id);
  void Clear();

 private:
  void MoveToHash();
  bool dense_mode_ = true;
  int64_t count_ = 0;
  std::vector<int32_t> dense_;
  std::unordered_map<int64_t, int32_t> hash_;
};

class RowIds {
 public:
  // Rows 0..n-1 with ids[r] (nullptr: id r), all live. Throws
  // std::invalid_argument for a negative or repeated id.
  void Reset(const int64_t* ids, int64_t n);

  int64_t num_rows() const { return static_cast<int64_t>(row_ids_.size()); }
  int64_t live() const { return live_; }
  int64_t IdOf(int64_t row) const { return row_ids_[row]; }  // -1: a dead row
  int32_t RowOf(int64_t id) const { return map_.Find(id); }  // -1: not held
  const std::vector<int64_t>& ids() const { return row_ids_; }

  int32_t Append(int64_t id);  // a new live row holding id (not held before)
  void Kill(int32_t row);      // the row's id is no longer held
  // After a compaction: row r becomes renumber[r] (-1: dropped, live rows
  // only, order kept); `count` rows remain.
  void Renumber(const std::vector<int32_t>& renumber, int32_t count);

  // Rows -> ids in place; -1 (padding) stays.
  void ToIds(int64_t* rows, int64_t count) const;

  // Bit r of `bits` set when row r is live, passes `allow` (if present) and
  // not `deny`; ids not held are ignored. A mask must cover every held id.
  // `bits` gets at least num_rows() + 64 bits. Returns the count of set bits.
  int64_t FilterRows(const IdFilter& allow, const IdFilter& deny, std::vector<uint64_t>* bits) const;
  // The rows whose bit is set, ascending.
  static std::vector<int32_t> RowsOf(const std::vector<uint64_t>& bits, int64_t num_rows);
  std::vector<int32_t> LiveRows() const { return RowsOf(live_bits_, num_rows()); }

 private:
  void SetLive(int64_t row, bool live);

  std::vector<int64_t> row_ids_;     // user id of each row, -1 = dead
  std::vector<uint64_t> live_bits_;  // bit per row: live
  IdMap map_;
  int64_t live_ = 0;
  bool identity_ = true;  // row_ids_[r] == r for every row (so all are live): ToIds has nothing to do
};

}  // namespace annlib
