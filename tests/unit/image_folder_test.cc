// JPEG folders: label parsing from names and manifests, decoding (DCT scaling, grayscale, CMYK),
// every kind of unreadable file under both policies, tiny images resized up, and reproducible augmentation.
#include "trainer/data/image_folder.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "tests/support/jpeg_files.h"
#include "tests/support/temp_dir.h"
#include "trainer/core/errors.h"
#include "trainer/data/batch.h"
#include "trainer/data/jpeg.h"

namespace trainguard {
namespace {

using testing::EncodeJpeg;
using testing::GrayJpeg;
using testing::TempDir;
using testing::WavesJpeg;
using testing::WriteFile;

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

// Pixels (row, column) of `img`, as [height, width, 3] int16 for comparisons.
torch::Tensor Pixels(const RgbImage& img) {
  return torch::from_blob(const_cast<uint8_t*>(img.pixels.data()), {img.height, img.width, 3}, torch::kUInt8)
      .to(torch::kInt16);
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

TEST(Jpeg, ABoxDecodesAsTheSameRegionOfTheWholeImage) {
  const std::vector<std::pair<std::string, std::string>> files{
      {"4:2:0", WavesJpeg(300, 220, TJSAMP_420)},
      {"4:4:4", WavesJpeg(300, 220, TJSAMP_444)},
      {"4:2:2 progressive", WavesJpeg(300, 220, TJSAMP_422, TJFLAG_PROGRESSIVE)},
      {"gray", GrayJpeg(300, 220)}};
  // Boxes off the 8- and 16-pixel block grid, at the edges, and the whole image.
  const std::vector<PixelBox> boxes{{37, 53, 101, 77}, {0, 0, 220, 300}, {150, 210, 70, 90}, {5, 0, 60, 300}};
  for (const auto& [kind, bytes] : files) {
    for (const PixelBox& box : boxes) {
      for (const int min_side : {10, 30, 1000}) {  // scales 1/4 or 1/8, 1/2 or 1/4, 1
        const RgbImage part = DecodeJpeg(bytes, min_side, [&](int, int) { return box; });
        const int denom = box.width >= 8 * min_side && box.height >= 8 * min_side   ? 8
                          : box.width >= 4 * min_side && box.height >= 4 * min_side ? 4
                          : box.width >= 2 * min_side && box.height >= 2 * min_side ? 2
                                                                                    : 1;
        const int scaled_width = (300 + denom - 1) / denom, scaled_height = (220 + denom - 1) / denom;
        const RgbImage whole = DecodeJpeg(bytes, 220 / denom);  // the whole image at 1/denom
        ASSERT_EQ(whole.width, scaled_width) << kind;
        const int top = box.top / denom, left = box.left / denom;
        const int bottom = std::min(scaled_height, (box.top + box.height + denom - 1) / denom);
        const int right = std::min(scaled_width, (box.left + box.width + denom - 1) / denom);
        ASSERT_EQ(part.height, bottom - top) << kind << " min_side " << min_side;
        ASSERT_EQ(part.width, right - left) << kind << " min_side " << min_side;
        const auto expected = Pixels(whole).slice(0, top, bottom).slice(1, left, right);
        const int64_t differ = (Pixels(part) - expected).abs().max().item<int64_t>();
        EXPECT_EQ(differ, 0) << kind << ", box at (" << box.top << ", " << box.left << ") " << box.height << "x"
                             << box.width << ", 1/" << denom;
      }
    }
  }
}

TEST(Jpeg, ABoxIsDecodedAtTheSmallestScaleThatKeepsItAtLeastMinSide) {
  const std::string bytes = WavesJpeg(512, 384, TJSAMP_420);
  const auto box = [](int, int) { return PixelBox{50, 40, 300, 260}; };
  EXPECT_EQ(DecodeJpeg(bytes, 128, box).width, 130) << "1/2: 130x150";
  EXPECT_EQ(DecodeJpeg(bytes, 128, box).height, 150);
  EXPECT_EQ(DecodeJpeg(bytes, 64, box).width, 65) << "1/4";
  EXPECT_EQ(DecodeJpeg(bytes, 131, box).width, 260) << "1/2 would be 130 wide: full size";
  EXPECT_EQ(DecodeJpeg(bytes, 32, box).width, 33) << "1/8 (32.5 wide, rounded out)";
}

TEST(Jpeg, TruncationIsFoundWhereTheDecoderReaches) {
  const std::string good = WavesJpeg(256, 256, TJSAMP_420);
  const std::string half = good.substr(0, good.size() / 2);
  try {
    DecodeJpeg(half, 256);
    ADD_FAILURE() << "the whole image reaches the missing half";
  } catch (const JpegError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated (Premature end"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DecodeJpeg(half, 16, [](int, int) { return PixelBox{200, 0, 56, 256}; }), JpegError);
  // A box in the first rows never reaches the missing half (jpeg.h: the image check finds it).
  const RgbImage top = DecodeJpeg(half, 16, [](int, int) { return PixelBox{0, 0, 32, 256}; });
  const RgbImage top_of_good = DecodeJpeg(good, 16, [](int, int) { return PixelBox{0, 0, 32, 256}; });
  EXPECT_EQ(top.pixels, top_of_good.pixels);
}

TEST(Jpeg, ABoxOutsideTheImageIsAProgrammingError) {
  const std::string bytes = GrayJpeg(40, 30);
  EXPECT_THROW(DecodeJpeg(bytes, 8, [](int, int) { return PixelBox{0, 0, 31, 40}; }), std::logic_error);
  EXPECT_THROW(DecodeJpeg(bytes, 8, [](int, int) { return PixelBox{0, -1, 30, 40}; }), std::logic_error);
  EXPECT_THROW(DecodeJpeg(bytes, 8, [](int, int) { return PixelBox{0, 0, 0, 40}; }), std::logic_error);
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
