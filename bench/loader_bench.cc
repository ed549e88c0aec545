// Decoding rate of the JPEG folder loader on one thread: images per second per core for a
// folder (e.g. from `trainguard make-folder`), at a model input size, with training
// augmentation (random resized crop, flip) and normalisation, as the trainer asks for them.
// Then the same through the trainer's BatchPrefetcher on LOADER_THREADS threads in a process
// whose intra-op thread count is INTRA_OP (the trainer's --threads), in images per second in
// all. Last, the floor of any JPEG loader on these files: each whole file decoded at 1/8
// scale, which costs little more than reading its Huffman-coded data (sequential: no decoder
// skips it), per core.
//   build/bench/loader_bench FOLDER [IMAGE_SIZE=128] [IMAGES=5000] [LOADER_THREADS=2] [INTRA_OP=8]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "trainer/data/image_folder.h"
#include "trainer/data/jpeg.h"
#include "trainer/data/prefetcher.h"

namespace {

template <typename Work>
double Seconds(const Work& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The samples of batch b (64 each) among the first n.
std::vector<int64_t> BatchIndices(int64_t b, int64_t n) {
  std::vector<int64_t> idx;
  for (int64_t i = b * 64; i < std::min<int64_t>(b * 64 + 64, n); ++i) idx.push_back(i);
  return idx;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace trainguard;
  if (argc < 2) {
    std::fprintf(stderr, "usage: loader_bench FOLDER [IMAGE_SIZE] [IMAGES] [LOADER_THREADS] [INTRA_OP]\n");
    return 2;
  }
  torch::set_num_threads(1);
  ImageFolderOptions o;
  o.image_size = argc > 2 ? std::stoll(argv[2]) : 128;
  o.num_classes = 10;
  const ImageFolderDataset ds(ScanImageFolder(argv[1]), o);
  const int64_t n = std::min<int64_t>(argc > 3 ? std::stoll(argv[3]) : 5000, ds.size());
  const double loader = Seconds([&] {
    for (int64_t b = 0; b * 64 < n; ++b) ds.Images(BatchIndices(b, n), {0});
  });
  const int loader_threads = argc > 4 ? std::stoi(argv[4]) : 2;
  const int intra_op = argc > 5 ? std::stoi(argv[5]) : 8;
  torch::set_num_threads(intra_op);
  const int64_t batches = (n + 63) / 64;
  const double prefetched = Seconds([&] {
    BatchPrefetcher p(
        [&](int64_t b) {
          Batch batch;
          batch.images = ds.Images(BatchIndices(b, n), {0}).images;
          return batch;
        },
        0, batches, loader_threads, loader_threads);
    for (int64_t b = 0; b < batches; ++b) p.Next();
  });
  torch::set_num_threads(1);
  const double floor = Seconds([&] {
    for (int64_t i = 0; i < n; ++i) DecodeJpegFile(ds.source(i), 1);  // 1/8 of any image >= 8 px
  });
  std::printf(
      "images=%lld image_size=%lld seconds=%.3f images_per_s_per_core=%.0f "
      "prefetcher_%d_threads_intra_op_%d_per_s=%.0f "
      "whole_file_at_1/8_per_s=%.0f\n",
      static_cast<long long>(n), static_cast<long long>(o.image_size), loader, n / loader, loader_threads, intra_op,
      n / prefetched, n / floor);
  return 0;
}
