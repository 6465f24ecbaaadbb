#include "aligned_memory.h"

#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "portable.h"

namespace annlib {
namespace {

constexpr size_t kLine = 64;
// From this size on, buffers go on 2 MB boundaries with huge pages asked for
// (numpy's threshold for the same advice).
constexpr size_t kHugeFrom = size_t{4} << 20;
constexpr size_t kHugePage = size_t{2} << 20;

size_t Alignment(size_t bytes) { return bytes >= kHugeFrom ? kHugePage : kLine; }

}  // namespace

void* AllocateForScans(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t align = Alignment(bytes);
  if (bytes > static_cast<size_t>(-1) - align) throw std::bad_alloc();
  const size_t rounded = (bytes + align - 1) / align * align;  // aligned_alloc wants a multiple
  void* p = AlignedAlloc(align, rounded);
  if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
  return p;
}

void FreeForScans(void* p, size_t) { AlignedFree(p); }

}  // namespace annlib
