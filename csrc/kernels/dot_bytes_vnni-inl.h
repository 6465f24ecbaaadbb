// VNNI's byte dot product, for the units built with it: AVX-512 VNNI (the VBMI
// LUT16 scan, the int8 tiles of ops_avx512-inl.h with ANNLIB_AVX512_VNNI) and,
// where the unit defines ANNLIB_AVX_VNNI, AVX-VNNI on 256 bits (the int8 tiles of
// ops_avx2-inl.h). Included inside a unit's namespace, after <immintrin.h>.
//
// acc + the sum of each 32-bit lane's four bytes of a (unsigned) times b's
// (signed). On GCC an asm statement, the same instruction: with the intrinsic,
// GCC 12 copied the accumulators between registers on every step of the hot
// loops (15-16 moves in the four-query LUT16 loop's 43-47 instructions, 32 in
// the 8-query int8 tile's 64); tests/test_binary.py checks those loops.

#if !defined(ANNLIB_AVX_VNNI)
inline __m512i DotBytes(__m512i acc, __m512i a, __m512i b) {
#if defined(__GNUC__) && !defined(__clang__)
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, a, b);
#endif
}
#else
// {vex}: the AVX-VNNI encoding (without it the assembler picks AVX-512's).
inline __m256i DotBytes(__m256i acc, __m256i a, __m256i b) {
#if defined(__GNUC__) && !defined(__clang__)
  __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
  return acc;
#else
  return _mm256_dpbusd_avx_epi32(acc, a, b);
#endif
}
#endif
