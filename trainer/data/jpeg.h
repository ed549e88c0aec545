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

// Decodes at the smallest DCT scale (1/8 ... 1) that keeps both sides >= min_side; at the full
// size when no scale does, i.e. when a side of the image is already smaller than min_side (a 1x1
// file decodes as 1x1 whatever min_side is). Never upscales. Any valid JPEG decodes, however
// small. Throws JpegError: empty, not a JPEG, truncated, cannot decode.
RgbImage DecodeJpeg(const std::string& bytes, int min_side);

// Reads `path` and decodes it with DecodeJpeg: what training does with each image file. Throws
// JpegError whose what() is the reason (for a file that cannot be opened or read, the errno
// message naming the path, e.g. "cannot open P: No such file or directory").
RgbImage DecodeJpegFile(const std::string& path, int min_side);

// Encodes an 8-bit grayscale image (height * width bytes) as a JPEG of the given quality.
std::string EncodeGrayJpeg(const uint8_t* pixels, int width, int height, int quality);

}  // namespace trainguard
