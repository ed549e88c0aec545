// The image checks of the dataset doctor: every rank reads and fully decodes every image of its
// shard (in parallel, with the decoder training uses), so that all unreadable files of a folder
// are found in one pass instead of one per training run, and tiny placeholders (a valid 1x1 JPEG)
// are flagged as suspicious. The ranks then exchange what they found over the ControlPlane, so
// every rank holds the same merged report. Torch-free; no MPI here (only the ControlPlane).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "trainer/core/control_plane.h"
#include "trainer/data/image_list.h"

namespace trainguard {

struct ImageCheckOptions {
  int threads = 1;           // decoding threads on each rank; must be >= 1 (ConfigError otherwise)
  int min_image_side = 8;    // a readable image with a side shorter than this is suspicious
  size_t max_listed = 1000;  // problems listed in the merged report (the counts stay exact)
  int image_size = 128;      // the model input side (--image-size): files are decoded as training
                             // decodes them for it (same DCT scale), so a file that passes loads
};

struct ImageProblem {
  int64_t index = 0;        // the entry's index in `entries`
  std::string path;         // the entry's path
  std::string reason;       // unreadable: training's reason ("truncated (...)", "the file is empty");
                            // suspicious: "WxH, smaller than N pixels on a side (a placeholder?)"
  bool unreadable = false;  // false: suspicious (readable, smaller than min_image_side)
};

struct ImageCheckReport {
  int64_t checked = 0;                 // images checked, summed over ranks
  int64_t unreadable = 0;              // of which unreadable (training would stop or skip them)
  int64_t suspicious = 0;              // of which readable but smaller than min_image_side
  std::vector<ImageProblem> problems;  // every rank's, sorted by index, at most max_listed
  double seconds = 0;                  // wall time of the slowest rank's check
};

// Checks the images entries[i] for each i in `shard` (this rank's indices; duplicates are
// checked once; shards are meant to be disjoint across ranks, e.g. EvalShard, else an index on
// two ranks is counted twice) on options.threads threads: reads and decodes each file with
// DecodeJpegFile, the function training uses, at training's scale. A file that throws JpegError
// is unreadable, with the reason training would give; a decoded image with a side shorter than
// options.min_image_side is suspicious. Bad data is a result, never an exception.
// Collective: every rank of `control` must call it (with the same options); every rank returns
// the same merged report. A failure other than bad data (a bad option, out of memory) on any rank
// throws on every rank (RunAgreed), so no rank waits for a peer that gave up.
ImageCheckReport CheckImages(ControlPlane& control, const std::vector<ImageEntry>& entries,
                             const std::vector<int64_t>& shard, const ImageCheckOptions& options);

// A human summary: the counts, one line per listed problem ("unreadable image PATH: REASON",
// "suspicious image PATH: WxH, smaller than N pixels on a side (a placeholder?)"), how many were
// not listed, and what to do about them. Ends with a newline.
std::string FormatImageReport(const ImageCheckReport& report);

// The report as JSON, for the label report: {"checked", "unreadable", "suspicious", "seconds",
// "listed", "problems": [{"index", "path", "kind": "unreadable"|"suspicious", "reason"}]}.
// Paths are kept byte for byte: dump with error_handler_t::replace if they may not be UTF-8.
nlohmann::json ImageReportJson(const ImageCheckReport& report);

}  // namespace trainguard
