// Shrinking a JPEG folder (see shrink_folder.h).
#include "trainer/data/shrink_folder.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <filesystem>
#include <mutex>

#include "trainer/core/atomic_file.h"
#include "trainer/core/errors.h"
#include "trainer/data/image_folder.h"
#include "trainer/data/image_list.h"
#include "trainer/data/jpeg.h"
#include "trainer/data/worker_threads.h"

namespace trainguard {
namespace {

namespace fs = std::filesystem;

// The JPEG files under `source`, as paths relative to it, sorted.
std::vector<std::string> JpegFilesUnder(const std::string& source) {
  std::error_code ec;
  std::vector<std::string> files;
  for (fs::recursive_directory_iterator it(source, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file() && IsJpegName(it->path().filename().string())) {
      files.push_back(it->path().lexically_relative(source).string());
    }
  }
  if (ec) throw DataError("cannot read the folder " + source + " (" + ec.message() + ")");
  if (files.empty()) throw DataError(source + " holds no .jpg or .jpeg file");
  std::sort(files.begin(), files.end());
  return files;
}

struct FileOutcome {
  enum Kind { kShrunk, kCopied, kUnreadable } kind;
  int64_t bytes_in, bytes_out;
  std::string why;  // for kUnreadable
};

FileOutcome ShrinkFile(const std::string& from, const std::string& to, const ShrinkOptions& o) {
  const std::string bytes = ReadWholeFile(from);
  const auto size = static_cast<int64_t>(bytes.size());
  int width = 0, height = 0;  // at full size
  RgbImage image;
  try {
    image = DecodeJpeg(bytes, o.short_side, [&](int w, int h) {
      width = w;
      height = h;
      return PixelBox{0, 0, h, w};
    });
  } catch (const JpegError& e) {
    WriteFileAtomically(to, bytes);
    return {FileOutcome::kUnreadable, size, size, e.what()};
  }
  if (std::min(width, height) <= o.short_side) {
    WriteFileAtomically(to, bytes);
    return {FileOutcome::kCopied, size, size, ""};
  }
  // The shorter side becomes short_side; the longer keeps the aspect ratio.
  const double scale = static_cast<double>(o.short_side) / std::min(width, height);
  const int new_width = width <= height ? o.short_side : static_cast<int>(std::lround(width * scale));
  const int new_height = height < width ? o.short_side : static_cast<int>(std::lround(height * scale));
  if (image.width != new_width || image.height != new_height) {
    const auto hwc = ResizeRgb(image, new_height, new_width).permute({1, 2, 0}).contiguous();
    image = {new_width, new_height,
             std::vector<uint8_t>(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel())};
  }
  const std::string encoded = EncodeRgbJpeg(image, o.quality);
  WriteFileAtomically(to, encoded);
  return {FileOutcome::kShrunk, size, static_cast<int64_t>(encoded.size()), ""};
}

}  // namespace

ShrinkReport ShrinkFolder(const std::string& source, const std::string& out, const ShrinkOptions& options) {
  // An output inside the source would be read back as source files by a rerun.
  const fs::path src = fs::weakly_canonical(source), dst = fs::weakly_canonical(out);
  if (std::mismatch(src.begin(), src.end(), dst.begin(), dst.end()).first == src.end()) {
    throw DataError("the output folder " + out + " lies inside the source " + source + "; write it elsewhere");
  }
  const std::vector<std::string> files = JpegFilesUnder(source);
  ShrinkReport report;
  std::mutex mutex;
  std::exception_ptr error;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < files.size();) {
      const fs::path from = fs::path(source) / files[i], to = fs::path(out) / files[i];
      try {
        if (fs::exists(to)) {
          std::lock_guard<std::mutex> lock(mutex);
          ++report.kept;
          continue;
        }
        fs::create_directories(to.parent_path());
        const FileOutcome o = ShrinkFile(from.string(), to.string(), options);
        std::lock_guard<std::mutex> lock(mutex);
        report.bytes_in += o.bytes_in;
        report.bytes_out += o.bytes_out;
        if (o.kind == FileOutcome::kShrunk) ++report.shrunk;
        if (o.kind != FileOutcome::kShrunk) ++report.copied;
        if (o.kind == FileOutcome::kUnreadable) report.unreadable.push_back(from.string() + ": " + o.why);
      } catch (const std::exception&) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        next = files.size();  // the others stop after their current file
      }
    }
  };
  for (auto& t : StartWorkerThreads(std::max(1, options.threads), work)) t.join();
  if (error) std::rethrow_exception(error);
  std::sort(report.unreadable.begin(), report.unreadable.end());
  return report;
}

}  // namespace trainguard
