// JPEG decoding and encoding with libjpeg-turbo's TurboJPEG API. Decoding uses the library's
// DCT scaling (1/2, 1/4, 1/8 ...) when the target is much smaller than the source, and always
// yields RGB: grayscale and CMYK files are converted, not rejected.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace trainguard {

// The file could not be decoded; what() says why in the library's words.
class JpegError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // height * width * 3, row-major, RGB
};

// Decodes at the smallest DCT scale that keeps both sides >= min_side (the full size when the
// image is smaller). Throws JpegError.
RgbImage DecodeJpeg(const std::string& bytes, int min_side);

// Encodes an 8-bit grayscale image (height * width bytes) as a JPEG of the given quality.
std::string EncodeGrayJpeg(const uint8_t* pixels, int width, int height, int quality);

}  // namespace trainguard
