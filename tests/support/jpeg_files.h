// Writing test images: raw bytes to a file (truncated or bogus JPEGs included), and a gray
// gradient of any size as JPEG bytes.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "trainer/data/jpeg.h"

namespace trainguard::testing {

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A gray gradient of the given size as JPEG bytes.
inline std::string GrayJpeg(int width, int height) {
  std::vector<uint8_t> px(static_cast<size_t>(width * height));
  for (int i = 0; i < width * height; ++i) px[static_cast<size_t>(i)] = static_cast<uint8_t>((i * 7) % 256);
  return EncodeGrayJpeg(px.data(), width, height, 90);
}

}  // namespace trainguard::testing
