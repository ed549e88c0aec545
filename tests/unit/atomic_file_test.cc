// Atomic writes: the old file survives a failed write (a full disk included), no temporary is
// left behind.
#include "trainer/core/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "tests/support/temp_dir.h"

namespace trainguard {
namespace {

namespace fs = std::filesystem;

TEST(AtomicFile, WritesAndReadsBack) {
  testing::TempDir tmp("rw");
  const fs::path dir = tmp.path();
  const std::string path = (dir / "f").string();
  WriteFileAtomically(path, std::string("abc\0def", 7));
  EXPECT_EQ(ReadWholeFile(path), std::string("abc\0def", 7));
  WriteFileAtomically(path, "new");
  EXPECT_EQ(ReadWholeFile(path), "new");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1) << "no temporary left";
}

TEST(AtomicFile, MissingFolderIsAnErrorNamingThePath) {
  try {
    WriteFileAtomically("/nonexistent-dir/x/ckpt", "data");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x/ckpt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ReadWholeFile("/nonexistent-dir/none"), IoError);
}

TEST(AtomicFile, FullDiskKeepsTheOldFileAndRemovesTheTemporary) {
  testing::TempDir tmp("full");
  const fs::path dir = tmp.path();
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here (needs root): " << std::strerror(errno);
  }
  const std::string path = (dir / "ckpt").string();
  WriteFileAtomically(path, "old contents");
  try {
    WriteFileAtomically(path, std::string(1 << 20, 'x'));  // 1 MiB into 64 KiB
    ADD_FAILURE() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("No space left"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ReadWholeFile(path), "old contents");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1) << "temporary removed";
  ::umount(dir.c_str());
}

}  // namespace
}  // namespace trainguard
