// TurboJPEG wrappers (see jpeg.h).
#include "trainer/data/jpeg.h"

#include <turbojpeg.h>

#include <memory>

#include "trainer/core/atomic_file.h"

namespace trainguard {
namespace {

struct HandleCloser {
  void operator()(void* h) const { tjDestroy(h); }
};
using Handle = std::unique_ptr<void, HandleCloser>;

std::string Reason(tjhandle h) { return tjGetErrorStr2(h); }

}  // namespace

RgbImage DecodeJpeg(const std::string& bytes, int min_side) {
  Handle h(tjInitDecompress());
  if (!h) throw JpegError("cannot start the JPEG decoder");
  if (bytes.empty()) throw JpegError("the file is empty");
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  if (tjDecompressHeader3(h.get(), data, bytes.size(), &width, &height, &subsampling, &colorspace) != 0) {
    throw JpegError("not a JPEG (" + Reason(h.get()) + ")");
  }
  // The smallest downscaling factor whose output still covers min_side on both sides; 1/1 (the
  // full size) when none does, e.g. a 4x4 image and min_side 128. Upscaling factors (2/1 ...)
  // are never taken: resizing up is the resampler's job, as in PIL + torchvision.
  int count = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&count);
  tjscalingfactor best{1, 1};
  for (int i = 0; i < count; ++i) {
    if (factors[i].num > factors[i].denom) continue;
    const int w = TJSCALED(width, factors[i]), hgt = TJSCALED(height, factors[i]);
    if (w >= min_side && hgt >= min_side &&
        static_cast<int64_t>(w) * hgt < static_cast<int64_t>(TJSCALED(width, best)) * TJSCALED(height, best)) {
      best = factors[i];
    }
  }
  RgbImage img;
  img.width = TJSCALED(width, best);
  img.height = TJSCALED(height, best);
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  std::vector<uint8_t> raw(static_cast<size_t>(img.width) * img.height * (cmyk ? 4 : 3));
  if (tjDecompress2(h.get(), data, bytes.size(), raw.data(), img.width, 0, img.height, cmyk ? TJPF_CMYK : TJPF_RGB,
                    0) != 0) {
    // Warnings such as extraneous bytes are harmless; a truncated file is a warning too, but
    // half of its pixels would be invented gray.
    const std::string why = Reason(h.get());
    if (tjGetErrorCode(h.get()) == TJERR_FATAL || why.find("Premature end") != std::string::npos) {
      throw JpegError((why.find("Premature end") != std::string::npos ? "truncated (" : "cannot decode (") + why + ")");
    }
  }
  if (!cmyk) {
    img.pixels = std::move(raw);
    return img;
  }
  // Adobe CMYK JPEGs store inverted values: R = C * K / 255 with C, K as stored.
  img.pixels.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (size_t p = 0, n = img.pixels.size() / 3; p < n; ++p) {
    const unsigned k = raw[4 * p + 3];
    for (int c = 0; c < 3; ++c) img.pixels[3 * p + c] = static_cast<uint8_t>(raw[4 * p + c] * k / 255);
  }
  return img;
}

RgbImage DecodeJpegFile(const std::string& path, int min_side) {
  std::string bytes;
  try {
    bytes = ReadWholeFile(path);
  } catch (const IoError& e) {
    throw JpegError(e.what());
  }
  return DecodeJpeg(bytes, min_side);
}

std::string EncodeGrayJpeg(const uint8_t* pixels, int width, int height, int quality) {
  Handle h(tjInitCompress());
  if (!h) throw JpegError("cannot start the JPEG encoder");
  unsigned char* out = nullptr;
  unsigned long size = 0;
  if (tjCompress2(h.get(), pixels, width, 0, height, TJPF_GRAY, &out, &size, TJSAMP_GRAY, quality, 0) != 0) {
    const std::string why = Reason(h.get());
    tjFree(out);
    throw JpegError("cannot encode (" + why + ")");
  }
  std::string bytes(reinterpret_cast<const char*>(out), size);
  tjFree(out);
  return bytes;
}

}  // namespace trainguard
