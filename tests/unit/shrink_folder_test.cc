// shrink-folder: every JPEG under the source lands at the same relative path, with its shorter
// side at the asked size and the same picture; small and unreadable files are copied byte for
// byte; other files stay behind; a rerun keeps what is there and finishes the rest.
#include "trainer/data/shrink_folder.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <unistd.h>

#include "tests/support/jpeg_files.h"
#include "tests/support/temp_dir.h"
#include "trainer/core/atomic_file.h"
#include "trainer/core/errors.h"
#include "trainer/data/jpeg.h"

namespace trainguard {
namespace {

using testing::GrayJpeg;
using testing::TempDir;
using testing::WavesJpeg;
using testing::WriteFile;

struct Source {
  TempDir dir{"shrink_src"};
  TempDir out{"shrink_out"};
  const std::string wide = WavesJpeg(400, 300, TJSAMP_420);
  const std::string tall = WavesJpeg(300, 400, TJSAMP_444);
  const std::string small = GrayJpeg(80, 60);
  Source() {
    ::mkdir(dir.File("training").c_str(), 0755);
    ::mkdir(dir.File("validation").c_str(), 0755);
    WriteFile(dir.File("training/1_wide.jpg"), wide);
    WriteFile(dir.File("training/2_tall.JPEG"), tall);
    WriteFile(dir.File("validation/3_small.jpg"), small);
    WriteFile(dir.File("training/4_bad.jpg"), "not a jpeg at all");
    WriteFile(dir.File("training/notes.txt"), "kept out");
  }
  ShrinkReport Run(int threads = 2) const {
    ShrinkOptions o;
    o.short_side = 100;
    o.threads = threads;
    return ShrinkFolder(dir.path(), out.path(), o);
  }
};

// `img` as [3, h, w] float, for comparing pictures.
torch::Tensor Planes(const RgbImage& img) {
  return torch::from_blob(const_cast<uint8_t*>(img.pixels.data()), {img.height, img.width, 3}, torch::kUInt8)
      .permute({2, 0, 1})
      .to(torch::kFloat32);
}

TEST(ShrinkFolder, ShrinksEveryJpegToItsShorterSideAndCopiesTheRest) {
  const Source s;
  const ShrinkReport r = s.Run();
  EXPECT_EQ(r.shrunk, 2);
  EXPECT_EQ(r.copied, 2);
  EXPECT_EQ(r.kept, 0);
  const RgbImage wide = DecodeJpeg(ReadWholeFile(s.out.File("training/1_wide.jpg")), 1000);
  EXPECT_EQ(wide.width, 133);
  EXPECT_EQ(wide.height, 100);
  const RgbImage tall = DecodeJpeg(ReadWholeFile(s.out.File("training/2_tall.JPEG")), 1000);
  EXPECT_EQ(tall.width, 100);
  EXPECT_EQ(tall.height, 133);
  EXPECT_EQ(ReadWholeFile(s.out.File("validation/3_small.jpg")), s.small) << "no larger than the side: copied";
  EXPECT_EQ(ReadWholeFile(s.out.File("training/4_bad.jpg")), "not a jpeg at all")
      << "unreadable: copied for training's --unreadable policy to meet";
  ASSERT_EQ(r.unreadable.size(), 1u);
  EXPECT_NE(r.unreadable[0].find("4_bad.jpg: not a JPEG"), std::string::npos) << r.unreadable[0];
  EXPECT_NE(::access(s.out.File("training/notes.txt").c_str(), F_OK), 0) << "not a JPEG name: not copied";
  EXPECT_LT(r.bytes_out, r.bytes_in);
}

TEST(ShrinkFolder, AShrunkImageIsTheSamePicture) {
  const Source s;
  s.Run(1);
  const auto original = Planes(DecodeJpeg(s.wide, 1000));
  const auto shrunk = Planes(DecodeJpeg(ReadWholeFile(s.out.File("training/1_wide.jpg")), 1000));
  namespace F = torch::nn::functional;
  const auto expected = F::interpolate(original.unsqueeze(0), F::InterpolateFuncOptions()
                                                                  .size(std::vector<int64_t>{100, 133})
                                                                  .mode(torch::kBilinear)
                                                                  .align_corners(false)
                                                                  .antialias(true))
                            .squeeze(0);
  // The same picture up to JPEG's loss and the DCT-scaled decode (measured: 6.2 levels on average,
  // most of it in the blue sawtooth); the picture mirrored differs by about 50.
  EXPECT_LT((shrunk - expected).abs().mean().item<double>(), 8.0);
  EXPECT_GT((shrunk - expected.flip({2})).abs().mean().item<double>(), 30.0) << "the comparison tells pictures apart";
}

TEST(ShrinkFolder, ARerunKeepsWhatIsThereAndFinishesTheRest) {
  const Source s;
  s.Run();
  const std::string first = ReadWholeFile(s.out.File("training/1_wide.jpg"));
  ASSERT_EQ(::unlink(s.out.File("training/2_tall.JPEG").c_str()), 0);  // as if interrupted before it
  const ShrinkReport again = s.Run();
  EXPECT_EQ(again.kept, 3);
  EXPECT_EQ(again.shrunk, 1);
  EXPECT_EQ(again.copied, 0);
  EXPECT_EQ(ReadWholeFile(s.out.File("training/1_wide.jpg")), first);
  EXPECT_EQ(DecodeJpeg(ReadWholeFile(s.out.File("training/2_tall.JPEG")), 1000).width, 100);
}

TEST(ShrinkFolder, AnOutputInsideTheSourceIsRefused) {
  const Source s;
  for (const std::string& out : {s.dir.path(), s.dir.File("training/small")}) {
    try {
      ShrinkFolder(s.dir.path(), out, ShrinkOptions{});
      ADD_FAILURE() << "expected DataError for " << out;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("lies inside the source"), std::string::npos) << e.what();
    }
  }
  EXPECT_NE(::access(s.dir.File("training/small").c_str(), F_OK), 0) << "nothing written";
}

TEST(ShrinkFolder, AMissingOrEmptySourceIsNamed) {
  const TempDir empty("shrink_empty"), out("shrink_out");
  for (const std::string& source : {std::string("/nonexistent/food-11"), empty.path()}) {
    try {
      ShrinkFolder(source, out.File("x"), ShrinkOptions{});
      ADD_FAILURE() << "expected DataError for " << source;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(source), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace trainguard
