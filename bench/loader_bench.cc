// Decoding rate of the JPEG folder loader on one thread: images per second per core for a
// folder (e.g. from `trainguard make-folder`), at a model input size, with training
// augmentation (random resized crop, flip) and normalisation, as the trainer asks for them.
//   build/bench/loader_bench FOLDER [IMAGE_SIZE=128] [IMAGES=5000]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "trainer/data/image_folder.h"

int main(int argc, char** argv) {
  using namespace trainguard;
  if (argc < 2) {
    std::fprintf(stderr, "usage: loader_bench FOLDER [IMAGE_SIZE] [IMAGES]\n");
    return 2;
  }
  torch::set_num_threads(1);
  ImageFolderOptions o;
  o.image_size = argc > 2 ? std::stoll(argv[2]) : 128;
  o.num_classes = 10;
  const ImageFolderDataset ds(ScanImageFolder(argv[1]), o);
  const int64_t n = std::min<int64_t>(argc > 3 ? std::stoll(argv[3]) : 5000, ds.size());
  const auto start = std::chrono::steady_clock::now();
  for (int64_t begin = 0; begin < n; begin += 64) {
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < std::min<int64_t>(begin + 64, n); ++i) idx.push_back(i);
    ds.Images(idx, {0});
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("images=%lld image_size=%lld seconds=%.3f images_per_s_per_core=%.0f\n", static_cast<long long>(n),
              static_cast<long long>(o.image_size), s, n / s);
  return 0;
}
