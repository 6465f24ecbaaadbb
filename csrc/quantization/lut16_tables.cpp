#include "lut16_tables.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../kernels/lut16.h"

namespace annlib {

int32_t PaddedBlocks(int32_t num_blocks) {
  return (num_blocks + kLut16BlockAlign - 1) / kLut16BlockAlign * kLut16BlockAlign;
}

void WriteLut16Codes(uint8_t* group, int lane, const uint8_t* codes, int32_t num_blocks) {
  const int shift = lane < 16 ? 0 : 4;
  const uint8_t keep = lane < 16 ? 0xF0 : 0x0F;
  for (int32_t b = 0; b < num_blocks; ++b) {
    uint8_t& byte = group[b * 16 + (lane & 15)];
    byte = static_cast<uint8_t>((byte & keep) | ((codes[b] & 0x0F) << shift));
  }
}

void ReadLut16Codes(const uint8_t* group, int lane, int32_t num_blocks, uint8_t* codes) {
  for (int32_t b = 0; b < num_blocks; ++b) {
    const uint8_t byte = group[b * 16 + (lane & 15)];
    codes[b] = lane < 16 ? (byte & 0x0F) : (byte >> 4);
  }
}

void PackLut16Codes(const uint8_t* codes, int64_t n, int32_t num_blocks, uint8_t* packed) {
  const int64_t group_bytes = int64_t{PaddedBlocks(num_blocks)} * 16;
  const int64_t groups = (n + kLut16Group - 1) / kLut16Group;
  std::memset(packed, 0, groups * group_bytes);
  for (int64_t j = 0; j < n; ++j)
    WriteLut16Codes(packed + j / kLut16Group * group_bytes, static_cast<int>(j % kLut16Group), codes + j * num_blocks,
                    num_blocks);
}

void QuantizeLut16(const float* lut, int32_t num_blocks, uint8_t* out, float* inv_scale, float* base) {
  const int32_t padded = PaddedBlocks(num_blocks);
  double total_min = 0.0;
  float widest = 0.0f;
  for (int32_t b = 0; b < num_blocks; ++b) {
    const float* row = lut + b * 16;
    const float lo = *std::min_element(row, row + 16);
    const float hi = *std::max_element(row, row + 16);
    total_min += lo;
    widest = std::max(widest, hi - lo);
  }
  const float scale = widest > 0.0f ? 255.0f / widest : 1.0f;
  std::memset(out, 0, padded * 16);
  for (int32_t b = 0; b < num_blocks; ++b) {
    const float* row = lut + b * 16;
    const float lo = *std::min_element(row, row + 16);
    for (int j = 0; j < 16; ++j) {
      const float v = std::nearbyint((row[j] - lo) * scale);
      out[b * 16 + j] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, v)));
    }
  }
  *inv_scale = 1.0f / scale;
  *base = static_cast<float>(total_min);
}

}  // namespace annlib
