// A dataset of JPEG files (a food-11-style folder or a manifest; see image_list.h). Pixels are
// decoded with libjpeg-turbo, resized to image_size x image_size, augmented when training
// (random resized crop and horizontal flip, seeded by (seed, epoch, sample) so a run is
// reproducible), and normalised with the ImageNet mean and std, as in HW3.
// Any valid JPEG loads, however small (a 1x1 placeholder is resized up like any other image;
// trainer/data/image_check.h reports such files as suspicious before training).
// Unreadable files (empty, truncated, not a JPEG, deleted after the scan, no permission)
// follow the policy: "fail" throws DataError naming the file and the reason;
// "skip" yields a zero image whose target the batch ignores, counts it and remembers it.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "trainer/data/dataset.h"
#include "trainer/data/image_list.h"
#include "trainer/data/jpeg.h"

namespace trainguard {

// `image` resized to height x width as a [3, height, width] uint8 tensor: antialiased bilinear
// in uint8, as PIL and torchvision's tensor transforms resize. The loader and shrink-folder use it.
torch::Tensor ResizeRgb(const RgbImage& image, int64_t height, int64_t width);

struct ImageFolderOptions {
  int64_t image_size = 128;      // side of the square model input
  int64_t num_classes = 0;       // classes, when known (0: unknown, label validation infers)
  bool augment = true;           // random resized crop + flip for training requests
  bool skip_unreadable = false;  // the "skip" policy instead of "fail"
  uint64_t seed = 0;
};

class ImageFolderDataset final : public Dataset {
 public:
  ImageFolderDataset(std::vector<ImageEntry> entries, ImageFolderOptions options);

  int64_t size() const override { return static_cast<int64_t>(entries_.size()); }
  ImageShape shape() const override { return {3, options_.image_size, options_.image_size}; }
  int64_t num_classes() const override { return options_.num_classes; }
  RawLabel label(int64_t i) const override { return entries_[static_cast<size_t>(i)].label; }
  std::string source(int64_t i) const override { return entries_[static_cast<size_t>(i)].path; }
  ImageBatch Images(const std::vector<int64_t>& indices, const ImageRequest& request) const override;

  const std::vector<ImageEntry>& entries() const { return entries_; }

  // Files skipped so far as "path: reason", in the order met.
  std::vector<std::string> skipped() const;

 private:
  // Decodes, augments and normalises one sample into `slot`, a [3, S, S] float tensor; throws
  // JpegError (leaving `slot` unchanged) when the file cannot be read or decoded.
  void LoadInto(int64_t index, const ImageRequest& request, torch::Tensor slot) const;

  std::vector<ImageEntry> entries_;
  ImageFolderOptions options_;
  mutable std::mutex mutex_;
  mutable std::vector<std::string> skipped_;
};

}  // namespace trainguard
