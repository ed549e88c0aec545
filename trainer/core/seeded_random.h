// SplitMix64: a small, well-known generator whose output is fixed by its seed on every
// platform (std::shuffle and the std distributions are not), for shuffling and augmentation
// that must be reproducible across machines and resumed runs. Pure.
#pragma once

#include <cstdint>

namespace trainguard {

class SeededRandom {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) without modulo bias (rejection sampling); bound > 0.
  uint64_t Below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % bound;
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// One seed from several values (e.g. seed, epoch, sample), well mixed.
inline uint64_t MixSeed(uint64_t a, uint64_t b, uint64_t c = 0) {
  SeededRandom r(a ^ (b * 0x9e3779b97f4a7c15ULL) ^ (c * 0xc2b2ae3d27d4eb4fULL));
  return r.Next();
}

}  // namespace trainguard
