// Heap storage for the arrays the search kernels scan, laid out as a build's
// arrays are: every buffer starts on a 64-byte cache line (the LUT16 and
// rescoring kernels load whole lines; a load split over two lines costs two
// accesses), and a large one on a 2 MB boundary with transparent huge pages
// asked for where the OS has them (Linux madvise; numpy does the same for
// the arrays of a built index), so random reads of its rows miss the TLB less.
//
// An index changed by updates keeps its leaves and reorder rows in these
// (search/partitioned_store.h). In plain std::vector storage (16-byte
// aligned, small pages) its scan stage measured ~20% and its reorder stage
// ~45% slower than the same index built at once, single queries ~15%; in
// these, single queries ~7%.
#pragma once
#include <cstddef>
#include <vector>

namespace annlib {

// Out of line (util/aligned_memory.cpp): baseline code only. Throws
// std::bad_alloc when out of memory.
void* AllocateForScans(size_t bytes);
void FreeForScans(void* p, size_t bytes);

template <class T>
struct ScanAllocator {
  using value_type = T;
  ScanAllocator() = default;
  template <class U>
  ScanAllocator(const ScanAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(AllocateForScans(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { FreeForScans(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const ScanAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const ScanAllocator<U>&) const { return false; }
};

template <class T>
using ScanVector = std::vector<T, ScanAllocator<T>>;

}  // namespace annlib
