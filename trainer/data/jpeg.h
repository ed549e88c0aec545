// JPEG decoding and encoding with libjpeg-turbo. Decoding yields RGB (grayscale and CMYK files
// are converted, not rejected), uses the library's DCT scaling (1/8, 1/4, 1/2) when the target
// is much smaller than the source, and can decode only a box of the image: what a random
// resized crop keeps.
#pragma once

#include <cstdint>
#include <functional>
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

// A rectangle of an image in its full-size pixel coordinates.
struct PixelBox {
  int top = 0, left = 0, height = 0, width = 0;
};

// Picks the box to decode from the image's full size (width, height). The box must lie inside
// the image and have both sides >= 1. An empty chooser picks the whole image.
using BoxChooser = std::function<PixelBox(int width, int height)>;

// Decodes the box that `choose` picks, scaled by the smallest of 1/8, 1/4, 1/2 that keeps both
// sides of the scaled box >= min_side, at full size when none does (a box smaller than
// min_side decodes at full size: never upscaled). The result covers the box scaled and rounded
// out to whole pixels. Only these scales are offered because libjpeg-turbo's SIMD code covers
// them (3/8 decodes slower than 1/2; bench/RESULTS.md).
//
// Cost: rows below the box are never decoded, and only the box's columns (widened to the
// image's 8- or 16-pixel blocks) are transformed and converted; rows above it are entropy-decoded
// (JPEG's Huffman stream is sequential) but not transformed. So a file truncated below the box
// decodes here without complaint; decoding the whole image finds the truncation (the dataset
// doctor does, trainer/data/image_check.h).
//
// Any valid JPEG decodes, however small. Throws JpegError: empty, not a JPEG, truncated (above or
// in the box), cannot decode.
RgbImage DecodeJpeg(const std::string& bytes, int min_side, const BoxChooser& choose = {});

// Reads `path` and decodes it with DecodeJpeg: what training does with each image file. Throws
// JpegError whose what() is the reason (for a file that cannot be opened or read, the errno
// message naming the path, e.g. "cannot open P: No such file or directory").
RgbImage DecodeJpegFile(const std::string& path, int min_side, const BoxChooser& choose = {});

// Encodes an 8-bit grayscale image (height * width bytes) as a JPEG of the given quality.
std::string EncodeGrayJpeg(const uint8_t* pixels, int width, int height, int quality);

// Encodes an RGB image as a baseline JPEG of the given quality with 4:2:0 chroma, as cameras
// and most photo JPEGs are.
std::string EncodeRgbJpeg(const RgbImage& image, int quality);

}  // namespace trainguard
