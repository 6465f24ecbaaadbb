// Bit, cache and memory helpers that compile with GCC, Clang and MSVC. Static
// (internal linkage): the ISA units include them too, so no copy built with
// wide-ISA flags can be merged with a baseline caller's.
#pragma once
#include <cstdint>
#include <cstdlib>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif
#if defined(_WIN32)
#include <malloc.h>
#endif

// A function the compiler must not inline: where inlining a small loop into a
// large body made GCC's cost model leave it scalar.
#if defined(_MSC_VER) && !defined(__clang__)
#define ANNLIB_NOINLINE __declspec(noinline)
#else
#define ANNLIB_NOINLINE __attribute__((noinline))
#endif

namespace annlib {

// Index of the lowest set bit; x != 0.
static inline int LowestBit32(uint32_t x) {
#if defined(_MSC_VER) && !defined(__clang__)
  unsigned long i;
  _BitScanForward(&i, x);
  return static_cast<int>(i);
#else
  return __builtin_ctz(x);
#endif
}

static inline int LowestBit64(uint64_t x) {
#if defined(_MSC_VER) && !defined(__clang__)
  unsigned long i;
  _BitScanForward64(&i, x);
  return static_cast<int>(i);
#else
  return __builtin_ctzll(x);
#endif
}

static inline int PopCount64(uint64_t x) {
#if defined(_MSC_VER) && !defined(__clang__)
  int n = 0;
  for (; x != 0; x &= x - 1) ++n;
  return n;
#else
  return __builtin_popcountll(x);
#endif
}

// A hint to fetch the cache line holding p; no effect where unsupported.
// An asm statement where we can: GCC 12 takes __builtin_prefetch to have no
// side effects and may delete it with the loop around it (it did so in the
// single-query leaf prefetch, and in the re-ranking kernels once their loop
// grew). tests/test_binary.py checks the library for the instructions.
static inline void Prefetch(const void* p) {
#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);  // intrin.h
#elif defined(_MSC_VER) && !defined(__clang__)
  (void)p;
#elif defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#elif defined(__aarch64__)
  __asm__ volatile("prfm pldl1keep, %0" : : "Q"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

// Prefetch into the L2 cache (not L1): for data needed later than the next
// few hundred cycles, without holding one of L1's few miss buffers.
static inline void PrefetchL2(const void* p) {
#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
#elif defined(_MSC_VER) && !defined(__clang__)
  (void)p;
#elif defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
#elif defined(__aarch64__)
  __asm__ volatile("prfm pldl2keep, %0" : : "Q"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, 2);
#endif
}

// Rows at random addresses (re-ranking's candidates, kernels/rescore-inl.h;
// the memory probe testing.read_rows) are fetched twice ahead of their use:
// into L2 this many cache lines ahead, so that many misses are in flight (L1
// alone holds a couple of dozen), then into L1 from L2.
// (Zen 4: 24 / 256-512 lines rescored rows of 128-1,536 B alike; 96 lines
// into L1 held up short lists of small rows.)
constexpr int32_t kRowPrefetchFarLines = 512, kRowPrefetchNearLines = 24;

// Those distances in rows, for rows of `lines` cache lines: while row i is
// read, row i + far is fetched into L2 and row i + near into L1.
struct RowPrefetchDistances {
  int64_t near, far;
};

static inline RowPrefetchDistances RowPrefetchFor(int64_t lines) {
  const int64_t near = kRowPrefetchNearLines / lines > 1 ? kRowPrefetchNearLines / lines : 1;
  const int64_t far = kRowPrefetchFarLines / lines > near + 1 ? kRowPrefetchFarLines / lines : near + 1;
  return {near, far};
}

// The schedule of a loop over `count` rows at random addresses: call
// PrefetchFirstRows before it and PrefetchRowsAhead(i) as it reaches row i;
// fetch(r, to_l1) fetches row r's lines, into L1 or (to_l1 false) L2.
template <class Fetch>
static inline void PrefetchFirstRows(RowPrefetchDistances d, int64_t count, Fetch fetch) {
  for (int64_t r = d.near; r < d.far && r < count; ++r) fetch(r, false);
  for (int64_t r = 0; r < d.near && r < count; ++r) fetch(r, true);
}

template <class Fetch>
static inline void PrefetchRowsAhead(RowPrefetchDistances d, int64_t i, int64_t count, Fetch fetch) {
  if (i + d.far < count) fetch(i + d.far, false);
  if (i + d.near < count) fetch(i + d.near, true);
}

// One line into L1 (to_l1) or L2.
static inline void PrefetchInto(const void* p, bool to_l1) {
  if (to_l1) {
    Prefetch(p);
  } else {
    PrefetchL2(p);
  }
}

// Memory aligned to `align` (a power of two; bytes a multiple of it); nullptr
// when out of memory. Free it with AlignedFree (Windows has no std::aligned_alloc).
static inline void* AlignedAlloc(size_t align, size_t bytes) {
#if defined(_WIN32)
  return _aligned_malloc(bytes, align);
#else
  return std::aligned_alloc(align, bytes);
#endif
}

static inline void* AlignedAlloc64(size_t bytes) { return AlignedAlloc(64, bytes); }

static inline void AlignedFree(void* p) {
#if defined(_WIN32)
  _aligned_free(p);
#else
  std::free(p);
#endif
}

}  // namespace annlib
