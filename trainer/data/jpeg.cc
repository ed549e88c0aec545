// JPEG decoding with libjpeg's API and encoding with TurboJPEG (see jpeg.h). Decoding uses the
// libjpeg API because TurboJPEG 2.1 (Debian 12) cannot decode part of an image:
// jpeg_crop_scanline and jpeg_skip_scanlines can.
#include "trainer/data/jpeg.h"

#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE and size_t declared first
// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <turbojpeg.h>

#include <algorithm>
#include <memory>

#include "trainer/core/atomic_file.h"

namespace trainguard {
namespace {

// libjpeg reports a fatal error by calling error_exit, which must not return: it jumps back to
// the setjmp in DecodeInto. Warnings are ignored, except a premature end of the data (a
// truncated file: libjpeg would pad it with gray).
struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

[[noreturn]] void ErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void EmitMessage(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    err->truncated = true;
    (*cinfo->err->format_message)(cinfo, err->message);
  }
}

// What DecodeInto reads and writes. It lives in DecodeJpeg's frame, not DecodeInto's: a
// longjmp out of libjpeg may skip only frames without destructors to run.
struct DecodeJob {
  DecodeJob(const std::string& file, const BoxChooser& chooser, int side)
      : bytes(&file), choose(&chooser), min_side(side) {}
  const std::string* bytes;
  const BoxChooser* choose;
  int min_side;
  bool header_read = false;
  bool cmyk = false;
  PixelBox box;              // in the decoded (scaled) image
  int decoded_left = 0;      // first column of `raw`, after jpeg_crop_scanline widened the box
  int decoded_width = 0;     // columns of `raw`
  std::vector<uint8_t> raw;  // box.height rows of decoded_width pixels, RGB or CMYK
  std::vector<JSAMPROW> rows;
};

// The denominator of the smallest scale 1/8, 1/4, 1/2 that keeps both sides of `box` >=
// min_side; 1 (full size) when none does.
unsigned ScaleDenominator(const PixelBox& box, int min_side) {
  for (unsigned denom : {8u, 4u, 2u}) {
    if (static_cast<int64_t>(box.width) >= static_cast<int64_t>(min_side) * denom &&
        static_cast<int64_t>(box.height) >= static_cast<int64_t>(min_side) * denom) {
      return denom;
    }
  }
  return 1;
}

// The box scaled by 1/denom, rounded out to whole pixels and kept inside the scaled image.
PixelBox ScaleBox(const PixelBox& box, unsigned denom, int scaled_width, int scaled_height) {
  const auto d = static_cast<int>(denom);
  const int top = box.top / d, left = box.left / d;
  const int bottom = std::min(scaled_height, (box.top + box.height + d - 1) / d);
  const int right = std::min(scaled_width, (box.left + box.width + d - 1) / d);
  return {top, left, bottom - top, right - left};
}

// Returns false after a libjpeg error, whose text is then in err.message. Only trivially
// destructible locals here (see DecodeJob).
bool DecodeInto(jpeg_decompress_struct& cinfo, ErrorManager& err, DecodeJob& job) {
  if (setjmp(err.jump) != 0) return false;
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(job.bytes->data()), job.bytes->size());
  jpeg_read_header(&cinfo, TRUE);
  job.header_read = true;
  const auto width = static_cast<int>(cinfo.image_width), height = static_cast<int>(cinfo.image_height);
  const PixelBox full = *job.choose ? (*job.choose)(width, height) : PixelBox{0, 0, height, width};
  if (full.top < 0 || full.left < 0 || full.height < 1 || full.width < 1 || full.top + full.height > height ||
      full.left + full.width > width) {
    throw std::logic_error("DecodeJpeg: the chosen box lies outside the image");
  }
  cinfo.scale_num = 1;
  cinfo.scale_denom = ScaleDenominator(full, job.min_side);
  job.cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = job.cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  job.box =
      ScaleBox(full, cinfo.scale_denom, static_cast<int>(cinfo.output_width), static_cast<int>(cinfo.output_height));
  // One column of margin on each side: chroma upsampling treats the edges of a cropped row as the
  // image's edges, so the outermost columns would differ from those of a whole decode.
  const int margin_left = std::max(0, job.box.left - 1);
  const int margin_right = std::min(static_cast<int>(cinfo.output_width), job.box.left + job.box.width + 1);
  auto left = static_cast<JDIMENSION>(margin_left), columns = static_cast<JDIMENSION>(margin_right - margin_left);
  if (columns < cinfo.output_width) jpeg_crop_scanline(&cinfo, &left, &columns);  // widens to blocks
  job.decoded_left = static_cast<int>(left);
  job.decoded_width = static_cast<int>(columns);
  const size_t row_bytes = static_cast<size_t>(columns) * static_cast<size_t>(cinfo.output_components);
  job.raw.resize(row_bytes * static_cast<size_t>(job.box.height));
  job.rows.resize(static_cast<size_t>(job.box.height));
  for (size_t r = 0; r < job.rows.size(); ++r) job.rows[r] = job.raw.data() + r * row_bytes;
  const auto top = static_cast<JDIMENSION>(job.box.top);
  if (top > 0 && jpeg_skip_scanlines(&cinfo, top) != top) ERREXIT(&cinfo, JERR_TOO_LITTLE_DATA);
  const JDIMENSION end = top + static_cast<JDIMENSION>(job.box.height);
  while (cinfo.output_scanline < end) {
    const JDIMENSION at = cinfo.output_scanline - top;
    if (jpeg_read_scanlines(&cinfo, job.rows.data() + at, end - cinfo.output_scanline) == 0) {
      ERREXIT(&cinfo, JERR_TOO_LITTLE_DATA);
    }
  }
  return true;  // the rows below the box stay undecoded: jpeg_destroy_decompress drops them
}

// The decoder's state; DecodeInto creates it, the destructor frees what was created (nothing
// when creation failed: jpeg_destroy_decompress tolerates a zeroed struct).
struct Decompressor {
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  Decompressor() {
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = ErrorExit;
    err.pub.emit_message = EmitMessage;
  }
  ~Decompressor() { jpeg_destroy_decompress(&cinfo); }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
};

// The box's pixels as RGB. Adobe CMYK JPEGs store inverted values: R = C * K / 255 as stored.
RgbImage CutBox(const DecodeJob& job) {
  RgbImage img;
  img.width = job.box.width;
  img.height = job.box.height;
  img.pixels.resize(static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3);
  const int in_px = job.cmyk ? 4 : 3;
  const size_t skip = static_cast<size_t>(job.box.left - job.decoded_left) * static_cast<size_t>(in_px);
  for (int r = 0; r < img.height; ++r) {
    const uint8_t* in = job.rows[static_cast<size_t>(r)] + skip;
    uint8_t* out = img.pixels.data() + static_cast<size_t>(r) * static_cast<size_t>(img.width) * 3;
    if (!job.cmyk) {
      std::copy(in, in + static_cast<size_t>(img.width) * 3, out);
      continue;
    }
    for (int x = 0; x < img.width; ++x, in += 4, out += 3) {
      for (int c = 0; c < 3; ++c) out[c] = static_cast<uint8_t>(in[c] * in[3] / 255);
    }
  }
  return img;
}

struct HandleCloser {
  void operator()(void* h) const { tjDestroy(h); }
};
using Handle = std::unique_ptr<void, HandleCloser>;

}  // namespace

RgbImage DecodeJpeg(const std::string& bytes, int min_side, const BoxChooser& choose) {
  if (bytes.empty()) throw JpegError("the file is empty");
  Decompressor d;
  DecodeJob job(bytes, choose, min_side);
  if (!DecodeInto(d.cinfo, d.err, job)) {
    throw JpegError((job.header_read ? "cannot decode (" : "not a JPEG (") + std::string(d.err.message) + ")");
  }
  if (d.err.truncated) throw JpegError("truncated (" + std::string(d.err.message) + ")");
  if (!job.cmyk && job.decoded_left == job.box.left && job.decoded_width == job.box.width) {
    return {job.box.width, job.box.height, std::move(job.raw)};
  }
  return CutBox(job);
}

RgbImage DecodeJpegFile(const std::string& path, int min_side, const BoxChooser& choose) {
  std::string bytes;
  try {
    bytes = ReadWholeFile(path);
  } catch (const IoError& e) {
    throw JpegError(e.what());
  }
  return DecodeJpeg(bytes, min_side, choose);
}

namespace {

std::string Encode(const uint8_t* pixels, int width, int height, int pixel_format, int subsampling, int quality) {
  Handle h(tjInitCompress());
  if (!h) throw JpegError("cannot start the JPEG encoder");
  unsigned char* out = nullptr;
  unsigned long size = 0;
  if (tjCompress2(h.get(), pixels, width, 0, height, pixel_format, &out, &size, subsampling, quality, 0) != 0) {
    const std::string why = tjGetErrorStr2(h.get());
    tjFree(out);
    throw JpegError("cannot encode (" + why + ")");
  }
  std::string bytes(reinterpret_cast<const char*>(out), size);
  tjFree(out);
  return bytes;
}

}  // namespace

std::string EncodeGrayJpeg(const uint8_t* pixels, int width, int height, int quality) {
  return Encode(pixels, width, height, TJPF_GRAY, TJSAMP_GRAY, quality);
}

std::string EncodeRgbJpeg(const RgbImage& image, int quality) {
  return Encode(image.pixels.data(), image.width, image.height, TJPF_RGB, TJSAMP_420, quality);
}

}  // namespace trainguard
