// Fashion-MNIST IDX reader (see fashion_mnist.h). Format: big-endian magic (0x803 images,
// 0x801 labels), dimension sizes, then raw uint8 data.
#include "trainer/data/fashion_mnist.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <fstream>

#include "trainer/core/errors.h"
#include "trainer/data/jpeg.h"

namespace trainguard {
namespace {

constexpr double kMean = 0.2860;  // of the 60,000 training images, pixels in [0,1]
constexpr double kStd = 0.3530;
constexpr int64_t kPad = 2;  // 28 + 2 * 2 = 32

std::string ReadGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    throw DataError(ErrnoMessage("cannot open " + path, errno) + "; install dataset-fashion-mnist or pass --data-dir");
  }
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int err = 0;
  const std::string reason = n < 0 ? gzerror(f, &err) : "";
  gzclose(f);
  if (n < 0) throw DataError(path + ": not a readable gzip file (" + reason + ")");
  return out;
}

uint32_t BigEndian32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Checks magic and dimensions; returns the item count.
int64_t CheckHeader(const std::string& path, const std::string& bytes, uint32_t magic, size_t header,
                    size_t item_bytes) {
  if (bytes.size() < header || BigEndian32(bytes, 0) != magic) {
    throw DataError(path +
                    ": not an IDX file of the expected kind (bad magic number); "
                    "check --data-dir");
  }
  const int64_t count = BigEndian32(bytes, 4);
  if (bytes.size() != header + static_cast<size_t>(count) * item_bytes) {
    throw DataError(path + ": truncated or oversized (header says " + std::to_string(count) +
                    " items); reinstall dataset-fashion-mnist");
  }
  return count;
}

class FashionMnist final : public Dataset {
 public:
  FashionMnist(std::string source, torch::Tensor pixels, std::vector<uint8_t> labels)
      : source_(std::move(source)), pixels_(std::move(pixels)), labels_(std::move(labels)) {}

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  ImageShape shape() const override { return {1, 28 + 2 * kPad, 28 + 2 * kPad}; }
  int64_t num_classes() const override { return 10; }

  RawLabel label(int64_t i) const override {
    const uint8_t v = labels_[static_cast<size_t>(i)];
    return {v, std::to_string(v)};
  }
  std::string source(int64_t i) const override { return source_ + "#" + std::to_string(i); }

  ImageBatch Images(const std::vector<int64_t>& indices, const ImageRequest&) const override {
    auto idx = torch::tensor(indices, torch::kInt64);
    auto x = pixels_.index_select(0, idx).to(torch::kFloat32).div_(255.0).sub_(kMean).div_(kStd);
    x = torch::constant_pad_nd(x, {kPad, kPad, kPad, kPad}, 0.0);
    return {x.unsqueeze(1), {}};
  }

 private:
  std::string source_;
  torch::Tensor pixels_;  // [N, 28, 28] uint8
  std::vector<uint8_t> labels_;
};

}  // namespace

RawFashionMnist ReadFashionMnist(const std::string& dir, Split split, int64_t limit) {
  const std::string prefix = dir + (split == Split::kTrain ? "/train" : "/t10k");
  RawFashionMnist raw;
  raw.image_path = prefix + "-images-idx3-ubyte.gz";
  const std::string label_path = prefix + "-labels-idx1-ubyte.gz";
  const std::string images = ReadGzip(raw.image_path);
  const std::string labels = ReadGzip(label_path);
  const int64_t n_images = CheckHeader(raw.image_path, images, 0x803, 16, 28 * 28);
  if (BigEndian32(images, 8) != 28 || BigEndian32(images, 12) != 28) {
    throw DataError(raw.image_path + ": images are not 28x28; check --data-dir");
  }
  const int64_t n_labels = CheckHeader(label_path, labels, 0x801, 8, 1);
  if (n_images != n_labels) {
    throw DataError(raw.image_path + " has " + std::to_string(n_images) + " images but " + label_path + " has " +
                    std::to_string(n_labels) + " labels");
  }
  const int64_t n = limit > 0 ? std::min(limit, n_images) : n_images;
  raw.pixels.assign(images.begin() + 16, images.begin() + 16 + n * 28 * 28);
  raw.labels.assign(labels.begin() + 8, labels.begin() + 8 + n);
  return raw;
}

std::unique_ptr<Dataset> LoadFashionMnist(const std::string& dir, Split split, int64_t limit) {
  RawFashionMnist raw = ReadFashionMnist(dir, split, limit);
  const auto n = static_cast<int64_t>(raw.labels.size());
  auto pixels = torch::from_blob(raw.pixels.data(), {n, 28, 28}, torch::kUInt8).clone();
  return std::make_unique<FashionMnist>(raw.image_path, std::move(pixels), std::move(raw.labels));
}

int64_t WriteFood11Folder(const RawFashionMnist& train, const RawFashionMnist& test, const std::string& out) {
  int64_t written = 0;
  auto write_split = [&](const RawFashionMnist& raw, const std::string& folder, bool labelled) {
    const std::string dir = out + "/" + folder;
    ::mkdir(out.c_str(), 0755);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      throw DataError(ErrnoMessage("cannot create " + dir, errno));
    for (size_t i = 0; i < raw.labels.size(); ++i) {
      char name[64];
      if (labelled) {
        std::snprintf(name, sizeof name, "%d_%zu.jpg", raw.labels[i], i);
      } else {
        std::snprintf(name, sizeof name, "%05zu.jpg", i);
      }
      // Plain writes: thousands of small files, where an fsync each would dominate.
      const std::string path = dir + "/" + name;
      const std::string jpeg = EncodeGrayJpeg(raw.pixels.data() + i * 28 * 28, 28, 28, 90);
      std::ofstream file(path, std::ios::binary);
      if (!file.write(jpeg.data(), static_cast<std::streamsize>(jpeg.size()))) {
        throw DataError(ErrnoMessage("cannot write " + path, errno));
      }
      ++written;
    }
  };
  write_split(train, "training", true);
  write_split(test, "validation", true);
  write_split(test, "test", false);
  return written;
}

}  // namespace trainguard
