// Rate of the dataset doctor's image check (CheckImages on one rank): images per second for a
// folder of JPEGs (e.g. from bench/make_photo_folder.py), with 1 and 2 decoding threads, each
// file read and decoded as training decodes it for IMAGE_SIZE.
//   build/bench/image_check_bench FOLDER [IMAGE_SIZE=128] [REPEATS=3]
#include <algorithm>
#include <cstdio>
#include <string>

#include "trainer/core/control_plane.h"
#include "trainer/data/image_check.h"

int main(int argc, char** argv) {
  using namespace trainguard;
  if (argc < 2) {
    std::fprintf(stderr, "usage: image_check_bench FOLDER [IMAGE_SIZE] [REPEATS]\n");
    return 2;
  }
  const auto entries = ScanImageFolder(argv[1]);
  std::vector<int64_t> shard(entries.size());
  for (size_t i = 0; i < shard.size(); ++i) shard[i] = static_cast<int64_t>(i);
  SoloControlPlane solo;
  ImageCheckOptions o;
  o.image_size = argc > 2 ? std::stoi(argv[2]) : 128;
  const int repeats = argc > 3 ? std::stoi(argv[3]) : 3;
  CheckImages(solo, entries, shard, o);  // warm the page cache: the rate is decoding, not the disk
  for (const int threads : {1, 2}) {
    o.threads = threads;
    double best = 1e30;
    ImageCheckReport r;
    for (int k = 0; k < repeats; ++k) {
      r = CheckImages(solo, entries, shard, o);
      best = std::min(best, r.seconds);
    }
    std::printf(
        "images=%lld image_size=%d threads=%d best_of=%d seconds=%.3f images_per_s=%.0f unreadable=%lld "
        "suspicious=%lld\n",
        static_cast<long long>(r.checked), o.image_size, threads, repeats, best, r.checked / best,
        static_cast<long long>(r.unreadable), static_cast<long long>(r.suspicious));
  }
  return 0;
}
