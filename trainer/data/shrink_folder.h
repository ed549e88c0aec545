// Shrinking a JPEG folder once, before training, so that decoding keeps up with a fast GPU step.
// Decoding a JPEG costs in proportion to its compressed size, most of it Huffman data that no
// decoder skips: a 512x384 photo costs a core about 1 ms with its crop and resize, so 16 cores
// feed about 15k images per second, half of what a fast GPU step takes. With the shorter side at
// 160 the same photos load about 2.8x faster, at 256 about 1.75x (bench/RESULTS.md). The price:
// a random resized crop narrower than the input size (128) is upsampled from fewer pixels than the
// original held.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace trainguard {

struct ShrinkOptions {
  int short_side = 256;  // the shorter side of a shrunk image; images already no larger are copied
  int quality = 90;      // JPEG quality of the re-encoded images (4:2:0 chroma)
  int threads = 1;       // files shrunk at once
};

struct ShrinkReport {
  int64_t shrunk = 0;                   // decoded, resized and re-encoded
  int64_t copied = 0;                   // copied byte for byte: already small enough, or unreadable
  int64_t kept = 0;                     // already in the output folder (an earlier run wrote them)
  int64_t bytes_in = 0;                 // of the files shrunk or copied by this run
  int64_t bytes_out = 0;                // of the files it wrote
  std::vector<std::string> unreadable;  // "path: reason", copied unchanged for training's policy to judge
};

// Writes every .jpg/.jpeg file under `source` (recursively) to the same relative path under
// `out`, resized so that its shorter side is options.short_side (antialiased, aspect kept) and
// re-encoded; names, and so labels, are unchanged, and other files are not copied. A file that
// cannot be decoded is copied unchanged and listed, so that training's --unreadable policy still
// meets it. Each file is written atomically and a file already in `out` is kept: a rerun after
// an interruption finishes the folder. Throws DataError when `source` cannot be read or holds no
// JPEG or `out` lies inside it, IoError when a file cannot be written (naming it).
ShrinkReport ShrinkFolder(const std::string& source, const std::string& out, const ShrinkOptions& options);

}  // namespace trainguard
