// Fashion-MNIST reading: the real Debian files, and clear errors for missing or damaged ones.
#include "trainer/data/fashion_mnist.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>

#include "tests/support/temp_dir.h"
#include "trainer/core/errors.h"

namespace trainguard {
namespace {

namespace fs = std::filesystem;
const char kDebianDir[] = "/usr/share/datasets/fashion-mnist";

TEST(FashionMnist, LoadsTheRealTestSplit) {
  auto ds = LoadFashionMnist(kDebianDir, Split::kTest, 0);
  EXPECT_EQ(ds->size(), 10000);
  EXPECT_EQ(ds->num_classes(), 10);
  auto x = ds->Images({0, 1, 9999}, {}).images;
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{3, 1, 32, 32}));
  EXPECT_EQ(x[0][0][0][0].item<float>(), 0.0f) << "padding is zero";
  EXPECT_NEAR(
      ds->Images({0, 1, 2, 3, 4, 5, 6, 7}, {})
          .images.index({torch::indexing::Slice(), 0, torch::indexing::Slice(2, 30), torch::indexing::Slice(2, 30)})
          .mean()
          .item<double>(),
      0.0, 0.5);
  EXPECT_EQ(ds->label(0).value, 9) << "the first test image is an ankle boot";
  EXPECT_NE(ds->source(0).find("t10k-images-idx3-ubyte.gz#0"), std::string::npos);
}

TEST(FashionMnist, LimitKeepsTheFirstSamples) {
  EXPECT_EQ(LoadFashionMnist(kDebianDir, Split::kTest, 123)->size(), 123);
}

void CopyTestSplitInto(const testing::TempDir& dir) {
  for (const char* f : {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    fs::copy_file(fs::path(kDebianDir) / f, dir.File(f));
  }
}

void ExpectDataError(const fs::path& dir, const std::string& file, const std::string& reason) {
  try {
    LoadFashionMnist(dir.string(), Split::kTest, 0);
    FAIL() << "expected DataError: " << reason;
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
  }
}

TEST(FashionMnist, MissingFolderNamesTheFileAndTheFix) {
  ExpectDataError("/nonexistent", "/nonexistent/t10k-images-idx3-ubyte.gz", "--data-dir");
}

TEST(FashionMnist, TruncatedLabelsAreRefused) {
  testing::TempDir tmp("fm_trunc");
  CopyTestSplitInto(tmp);
  const fs::path dir = tmp.path();
  const auto labels = dir / "t10k-labels-idx1-ubyte.gz";
  gzFile f = gzopen(labels.c_str(), "wb");
  const unsigned char header[8] = {0, 0, 8, 1, 0, 0, 0x27, 0x10};  // magic 0x801, 10000 labels
  gzwrite(f, header, 8);
  gzwrite(f, "\1\2\3", 3);  // but only 3 of them
  gzclose(f);
  ExpectDataError(dir, labels.string(), "truncated");
}

TEST(FashionMnist, WrongMagicIsRefused) {
  testing::TempDir tmp("fm_magic");
  CopyTestSplitInto(tmp);
  const fs::path dir = tmp.path();
  const auto images = dir / "t10k-images-idx3-ubyte.gz";
  fs::copy_file(dir / "t10k-labels-idx1-ubyte.gz", images, fs::copy_options::overwrite_existing);
  ExpectDataError(dir, images.string(), "bad magic");
}

}  // namespace
}  // namespace trainguard
