// Writing test images: raw bytes to a file (truncated or bogus JPEGs included), a gray gradient
// of any size, and colour images in any TurboJPEG pixel format and chroma subsampling, as JPEG
// bytes. Users link TurboJPEG::TurboJPEG.
#pragma once

#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <cmath>
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

// Pixels in a TurboJPEG pixel format (TJPF_*) as JPEG bytes: no chroma subsampling unless
// asked for (TJSAMP_*), baseline unless `flags` has TJFLAG_PROGRESSIVE.
inline std::string EncodeJpeg(const std::vector<uint8_t>& px, int width, int height, int pixel_format,
                              int subsampling = TJSAMP_444, int flags = 0) {
  tjhandle h = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  EXPECT_EQ(tjCompress2(h, px.data(), width, 0, height, pixel_format, &out, &size, subsampling, 90, flags), 0);
  std::string bytes(reinterpret_cast<char*>(out), size);
  tjFree(out);
  tjDestroy(h);
  return bytes;
}

// An RGB image of smooth colour waves (a photo-like signal that every block and every chroma
// sample tells apart).
inline std::string WavesJpeg(int width, int height, int subsampling, int flags = 0) {
  std::vector<uint8_t> px;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      px.insert(px.end(),
                {static_cast<uint8_t>(128 + 100 * std::sin(x * 0.11 + y * 0.05)),
                 static_cast<uint8_t>(128 + 100 * std::cos(y * 0.13)), static_cast<uint8_t>((x * 3 + y * 5) % 256)});
    }
  }
  return EncodeJpeg(px, width, height, TJPF_RGB, subsampling, flags);
}

}  // namespace trainguard::testing
