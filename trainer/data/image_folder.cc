// JPEG folder dataset (see image_folder.h).
#include "trainer/data/image_folder.h"

#include <cerrno>
#include <cmath>
#include <optional>

#include "trainer/core/errors.h"
#include "trainer/core/seeded_random.h"
#include "trainer/data/jpeg.h"

namespace trainguard {
namespace {

// The crop of RandomResizedCrop(scale (0.08, 1), ratio (3/4, 4/3)), as torchvision draws it, on
// the image at its full size.
PixelBox RandomResizedCrop(int height, int width, SeededRandom& rng) {
  const double area = static_cast<double>(height) * width;
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (0.08 + rng.Uniform() * (1.0 - 0.08));
    const double log_ratio = std::log(3.0 / 4.0) + rng.Uniform() * (std::log(4.0 / 3.0) - std::log(3.0 / 4.0));
    const double ratio = std::exp(log_ratio);
    const auto w = static_cast<int>(std::round(std::sqrt(target * ratio)));
    const auto h = static_cast<int>(std::round(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const auto top = static_cast<int>(rng.Below(static_cast<uint64_t>(height - h + 1)));
      const auto left = static_cast<int>(rng.Below(static_cast<uint64_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  return {0, 0, height, width};  // fallback: the whole image
}

}  // namespace

torch::Tensor ResizeRgb(const RgbImage& image, int64_t height, int64_t width) {
  // The [1, 3, h, w] view of the HWC pixels is channels-last, which torch's antialiased uint8
  // bilinear kernel handles without a copy.
  const auto x =
      torch::from_blob(const_cast<uint8_t*>(image.pixels.data()), {image.height, image.width, 3}, torch::kUInt8)
          .permute({2, 0, 1})
          .unsqueeze(0);
  namespace F = torch::nn::functional;
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{height, width})
                               .mode(torch::kBilinear)
                               .align_corners(false)
                               .antialias(true))
      .squeeze(0);
}

ImageFolderDataset::ImageFolderDataset(std::vector<ImageEntry> entries, ImageFolderOptions options)
    : entries_(std::move(entries)), options_(options) {}

void ImageFolderDataset::LoadInto(int64_t index, const ImageRequest& request, torch::Tensor slot) const {
  // Any valid JPEG loads, however small: a 1x1 or 4x4 file decodes at its full size and is
  // resized up to S x S below, as PIL + torchvision would (CheckImages reports such files as
  // suspicious; they are not unreadable).
  const bool augment = options_.augment && request.epoch >= 0;
  std::optional<SeededRandom> rng;
  BoxChooser crop;  // empty: the whole image
  if (augment) {
    rng.emplace(MixSeed(options_.seed, static_cast<uint64_t>(request.epoch), static_cast<uint64_t>(index)));
    crop = [&](int width, int height) { return RandomResizedCrop(height, width, *rng); };
  }
  // The crop is drawn on the full-size image, as torchvision draws it, and only it is decoded,
  // at the smallest DCT scale that keeps it at least S x S.
  const RgbImage img =
      DecodeJpegFile(entries_[static_cast<size_t>(index)].path, static_cast<int>(options_.image_size), crop);
  const bool flip = augment && rng->Uniform() < 0.5;
  // Only the final S x S image becomes float.
  auto x = ResizeRgb(img, options_.image_size, options_.image_size);
  if (flip) x = x.flip({2});
  // (x / 255 - mean) / std, written into the batch's row.
  static const auto scale = (1.0 / (255.0 * torch::tensor({0.229, 0.224, 0.225}))).to(torch::kFloat32).view({3, 1, 1});
  static const auto shift =
      (torch::tensor({0.485, 0.456, 0.406}) / torch::tensor({0.229, 0.224, 0.225})).to(torch::kFloat32).view({3, 1, 1});
  slot.copy_(x).mul_(scale).sub_(shift);
}

ImageBatch ImageFolderDataset::Images(const std::vector<int64_t>& indices, const ImageRequest& request) const {
  ImageBatch out;
  out.images = torch::empty({static_cast<int64_t>(indices.size()), 3, options_.image_size, options_.image_size});
  for (size_t row = 0; row < indices.size(); ++row) {
    try {
      LoadInto(indices[row], request, out.images[static_cast<int64_t>(row)]);
    } catch (const JpegError& e) {
      const std::string what = source(indices[row]) + ": " + e.what();
      if (!options_.skip_unreadable) {
        throw DataError("unreadable image " + what + "; fix or remove the file, or pass --unreadable skip");
      }
      out.images[static_cast<int64_t>(row)].zero_();  // a skipped image is all zeros
      out.unreadable.push_back(row);
      std::lock_guard<std::mutex> lock(mutex_);
      skipped_.push_back(what);
    }
  }
  return out;
}

std::vector<std::string> ImageFolderDataset::skipped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_;
}

}  // namespace trainguard
