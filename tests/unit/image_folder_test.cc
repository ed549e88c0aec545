// JPEG folders: label parsing from names and manifests, decoding (DCT scaling, grayscale, CMYK),
// every kind of unreadable file under both policies, tiny images resized up, and reproducible augmentation.
#include "trainer/data/image_folder.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <fstream>

#include "tests/support/jpeg_files.h"
#include "tests/support/temp_dir.h"
#include "trainer/core/errors.h"
#include "trainer/data/batch.h"
#include "trainer/data/jpeg.h"

namespace trainguard {
namespace {

using testing::GrayJpeg;
using testing::TempDir;
using testing::WriteFile;

// Pixels in a TurboJPEG pixel format (TJPF_*) as JPEG bytes, without chroma subsampling.
std::string EncodeJpeg(const std::vector<uint8_t>& px, int width, int height, int pixel_format) {
  tjhandle h = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  EXPECT_EQ(tjCompress2(h, px.data(), width, 0, height, pixel_format, &out, &size, TJSAMP_444, 90, 0), 0);
  std::string bytes(reinterpret_cast<char*>(out), size);
  tjFree(out);
  tjDestroy(h);
  return bytes;
}

std::string CmykJpeg(int width, int height) {
  return EncodeJpeg(std::vector<uint8_t>(static_cast<size_t>(width * height * 4), 200), width, height, TJPF_CMYK);
}

// An RGB image whose red channel rises from left to right and whose green and blue are fixed.
std::string RedRampJpeg(int width, int height, uint8_t green, uint8_t blue) {
  std::vector<uint8_t> px;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      px.insert(px.end(), {static_cast<uint8_t>(255 * x / (width - 1)), green, blue});
    }
  }
  return EncodeJpeg(px, width, height, TJPF_RGB);
}

TEST(ImageList, LabelsComeFromTheNameBeforeTheFirstUnderscore) {
  EXPECT_EQ(LabelFromFileName("3_117.jpg").value, 3);
  EXPECT_EQ(LabelFromFileName("10_0_a.jpg").value, 10);
  EXPECT_EQ(LabelFromFileName("-1_5.jpg").value, -1);
  EXPECT_FALSE(LabelFromFileName("0042.jpg").value.has_value());
  EXPECT_EQ(LabelFromFileName("0042.jpg").text, "") << "no underscore: unlabelled";
  EXPECT_FALSE(LabelFromFileName("abc_1.jpg").value.has_value());
  EXPECT_EQ(LabelFromFileName("abc_1.jpg").text, "abc") << "unparsable, kept for validation to judge";
  EXPECT_FALSE(LabelFromFileName("3.5_1.jpg").value.has_value());
  EXPECT_FALSE(LabelFromFileName("99999999999999999999_1.jpg").value.has_value());
}

TEST(ImageList, FolderScanSortsJpegsAndIgnoresOtherFiles) {
  TempDir dir("scan");
  for (const char* n : {"2_b.jpg", "1_a.JPEG", "notes.txt", "0007.jpg"}) WriteFile(dir.File(n), "x");
  const auto entries = ScanImageFolder(dir.path());
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].path, dir.File("0007.jpg"));
  EXPECT_EQ(entries[1].label.value, 1);
  EXPECT_EQ(entries[2].label.value, 2);
  EXPECT_THROW(ScanImageFolder(dir.File("none")), DataError);
}

TEST(ImageList, ManifestResolvesRelativePathsAndNamesBadLines) {
  TempDir dir("manifest");
  WriteFile(dir.File("m.csv"), "path,label\nimgs/a.jpg,3\n/abs/b.jpg,\nc.jpg,255\n");
  const auto entries = ReadManifest(dir.File("m.csv"));
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].path, dir.File("imgs/a.jpg"));
  EXPECT_EQ(entries[0].label.value, 3);
  EXPECT_EQ(entries[1].path, "/abs/b.jpg");
  EXPECT_FALSE(entries[1].label.value.has_value());
  EXPECT_EQ(entries[2].label.value, 255);
  WriteFile(dir.File("bad.csv"), "a.jpg,1\nno-comma-here\n");
  try {
    ReadManifest(dir.File("bad.csv"));
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv:2"), std::string::npos) << e.what();
  }
}

TEST(Jpeg, DctScalingDecodesNoLargerThanNeeded) {
  const std::string big = GrayJpeg(256, 192);
  const RgbImage quarter = DecodeJpeg(big, 48);
  EXPECT_EQ(quarter.width, 64);
  EXPECT_EQ(quarter.height, 48);
  const RgbImage full = DecodeJpeg(big, 1000);
  EXPECT_EQ(full.width, 256) << "never upscaled by the decoder";
  EXPECT_EQ(full.height, 192);
  for (const int side : {1, 4, 7}) {
    const RgbImage tiny = DecodeJpeg(GrayJpeg(side, side), 128);
    EXPECT_EQ(tiny.width, side) << "smaller than min_side: the full size";
    EXPECT_EQ(tiny.height, side);
    EXPECT_EQ(tiny.pixels.size(), static_cast<size_t>(side * side * 3));
  }
}

struct Folder {
  TempDir dir{"folder"};
  std::vector<ImageEntry> entries;
  void Add(const std::string& name, const std::string& bytes) {
    WriteFile(dir.File(name), bytes);
    entries.push_back({dir.File(name), LabelFromFileName(name)});
  }
};

ImageFolderOptions Options(bool skip) {
  ImageFolderOptions o;
  o.image_size = 32;
  o.num_classes = 11;
  o.skip_unreadable = skip;
  return o;
}

TEST(ImageFolder, EachUnreadableFileFailsWithItsPathAndReason) {
  Folder f;
  const std::string good = GrayJpeg(40, 40);
  f.Add("1_good.jpg", good);
  f.Add("2_truncated.jpg", good.substr(0, good.size() / 2));
  f.Add("3_text.jpg", "this is not a jpeg");
  f.Add("4_empty.jpg", "");
  f.Add("5_tiny.jpg", GrayJpeg(1, 1));  // valid, however small: not unreadable
  f.Add("6_deleted.jpg", good);
  ::unlink(f.dir.File("6_deleted.jpg").c_str());  // after the scan
  const ImageFolderDataset ds(f.entries, Options(false));
  EXPECT_NO_THROW(ds.Images({0}, {}));
  EXPECT_NO_THROW(ds.Images({4}, {}));
  const std::vector<std::pair<int64_t, std::string>> cases{
      {1, "truncated"}, {2, "not a JPEG"}, {3, "empty"}, {5, "No such file"}};
  for (const auto& [index, reason] : cases) {
    try {
      ds.Images({index}, {});
      ADD_FAILURE() << "expected DataError for " << reason;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(f.entries[static_cast<size_t>(index)].path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("--unreadable skip"), std::string::npos) << e.what();
    }
  }
}

TEST(ImageFolder, TinyJpegsAreResizedUpLikeAnyOtherImage) {
  Folder f;
  f.Add("1_one.jpg", GrayJpeg(1, 1));
  f.Add("2_four.jpg", GrayJpeg(4, 4));
  const ImageFolderDataset ds(f.entries, Options(false));
  for (const int64_t epoch : {int64_t{-1}, int64_t{2}}) {
    const torch::Tensor x = ds.Images({0, 1}, {epoch}).images;
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
    EXPECT_TRUE(torch::isfinite(x).all().item<bool>());
    EXPECT_GT(x[1].max().item<double>() - x[1].min().item<double>(), 0.1) << "the 4x4 gradient survives";
  }
  EXPECT_TRUE(ds.skipped().empty());
}

TEST(Jpeg, GrayscaleAndCmykBecomeRgb) {
  const RgbImage gray = DecodeJpeg(GrayJpeg(16, 16), 16);
  ASSERT_EQ(gray.pixels.size(), 16u * 16 * 3);
  EXPECT_EQ(gray.pixels[30], gray.pixels[31]);
  EXPECT_EQ(gray.pixels[31], gray.pixels[32]);
  const RgbImage cmyk = DecodeJpeg(CmykJpeg(16, 16), 16);
  ASSERT_EQ(cmyk.pixels.size(), 16u * 16 * 3);
  EXPECT_NEAR(cmyk.pixels[0], 200 * 200 / 255, 3);
}

TEST(ImageFolder, NoReadPermissionFollowsThePolicy) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads every file: permissions cannot be tested as root";
  Folder f;
  f.Add("1_locked.jpg", GrayJpeg(40, 40));
  ::chmod(f.dir.File("1_locked.jpg").c_str(), 0);
  EXPECT_THROW(ImageFolderDataset(f.entries, Options(false)).Images({0}, {}), DataError);
}

TEST(ImageFolder, SkipPolicyKeepsTheBatchSizeAndIgnoresTheTarget) {
  Folder f;
  f.Add("1_a.jpg", GrayJpeg(40, 40));
  f.Add("2_b.jpg", "garbage");
  f.Add("3_c.jpg", GrayJpeg(40, 40));
  const ImageFolderDataset ds(f.entries, Options(true));
  const Batch batch = MakeBatch(ds, {0, 1, 2}, -1);
  EXPECT_EQ(batch.images.size(0), 3) << "same rows, so every rank keeps the same step count";
  EXPECT_EQ(batch.targets[1].item<int64_t>(), -1);
  EXPECT_EQ(batch.targets[2].item<int64_t>(), 3);
  EXPECT_EQ(batch.valid_targets, 2);
  EXPECT_EQ(batch.images[1].abs().sum().item<double>(), 0.0);
  ASSERT_EQ(ds.skipped().size(), 1u);
  EXPECT_NE(ds.skipped()[0].find("2_b.jpg"), std::string::npos);
}

TEST(ImageFolder, AugmentationIsSeededByEpochAndSample) {
  Folder f;
  f.Add("1_a.jpg", GrayJpeg(64, 48));
  f.Add("2_b.jpg", GrayJpeg(64, 48));
  const ImageFolderDataset ds(f.entries, Options(false));
  const auto a = ds.Images({0, 1}, {3}).images;
  EXPECT_TRUE(torch::equal(a, ds.Images({0, 1}, {3}).images)) << "same epoch, same pixels";
  EXPECT_FALSE(torch::equal(a, ds.Images({0, 1}, {4}).images)) << "another epoch, another crop";
  EXPECT_FALSE(torch::equal(a[0], a[1])) << "each sample its own crop";
  EXPECT_TRUE(torch::equal(ds.Images({0}, {}).images, ds.Images({0}, {}).images));
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
}

TEST(ImageFolder, PixelsAreNormalisedWithTheImageNetStatistics) {
  Folder f;
  f.Add("0_a.jpg", RedRampJpeg(96, 64, 100, 50));
  const ImageFolderDataset ds(f.entries, Options(false));
  const torch::Tensor x = ds.Images({0}, {}).images[0];
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 32, 32}));
  const double tolerance = 3.0 / 255 / 0.224;  // JPEG and resampling error, a few levels
  EXPECT_NEAR(x[1].mean().item<double>(), (100 / 255.0 - 0.456) / 0.224, tolerance);
  EXPECT_NEAR(x[2].mean().item<double>(), (50 / 255.0 - 0.406) / 0.225, tolerance);
  EXPECT_NEAR(x[1].max().item<double>() - x[1].min().item<double>(), 0.0, tolerance) << "green is flat";
  // Not augmented: the whole image, the right way round, resized 96 -> 32 wide.
  EXPECT_LT(x[0][16][0].item<double>(), (8 / 255.0 - 0.485) / 0.229);
  EXPECT_GT(x[0][16][31].item<double>(), (247 / 255.0 - 0.485) / 0.229);
}

TEST(ImageFolder, AugmentationFlipsAboutHalfOfTheSamples) {
  Folder f;
  f.Add("0_a.jpg", RedRampJpeg(64, 64, 0, 0));
  const ImageFolderDataset ds(f.entries, Options(false));
  int flipped = 0;
  const int epochs = 40;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const torch::Tensor red = ds.Images({0}, {epoch}).images[0][0];
    // Any crop of a left-to-right ramp still rises unless it was flipped.
    flipped += red.select(1, 0).mean().item<double>() > red.select(1, 31).mean().item<double>();
  }
  EXPECT_GT(flipped, epochs / 5);
  EXPECT_LT(flipped, epochs - epochs / 5);
}

}  // namespace
}  // namespace trainguard
