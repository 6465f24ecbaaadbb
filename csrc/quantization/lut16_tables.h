// Building the inputs of the LUT16 kernel: packed 4-bit codes and per-query
// uint8 lookup tables (layouts in kernels/lut16.h).
#pragma once
#include <cstdint>

namespace annlib {

// Blocks rounded up to the kernel's alignment.
int32_t PaddedBlocks(int32_t num_blocks);

// One point's codes in a packed group ([PaddedBlocks][16] bytes): lane i < 16
// keeps its code in the low nibble of byte i of every block, lane i + 16 in
// the high nibble. The only place that knows the nibble layout.
void WriteLut16Codes(uint8_t* group, int lane, const uint8_t* codes, int32_t num_blocks);
void ReadLut16Codes(const uint8_t* group, int lane, int32_t num_blocks, uint8_t* codes);

// codes [n][num_blocks] (values 0..15) -> packed [ceil(n/32)][PaddedBlocks][16].
void PackLut16Codes(const uint8_t* codes, int64_t n, int32_t num_blocks, uint8_t* packed);

// lut [num_blocks][16] float scores -> uint8 [PaddedBlocks][16] with
// score ~= inv_scale * sum(q) + base. One scale for all blocks (255 over the
// widest block range), each block shifted by its own minimum.
void QuantizeLut16(const float* lut, int32_t num_blocks, uint8_t* out, float* inv_scale, float* base);

}  // namespace annlib
