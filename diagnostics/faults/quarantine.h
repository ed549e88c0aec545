// The quarantine file of --bad-samples quarantine: the samples a failed step's diagnosis named,
// set aside so that training goes on without them. One JSON object per line (sample, file,
// label, step, rank, error), so that a person can read it and a script can parse it. The file is
// what a rerun reads to exclude the same samples, so it is written whole and atomically (a crash
// leaves the old or the new file, never half a line), under a lock that several ranks of a job
// may contend for. Pure: no Torch, no MPI.
#pragma once

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/core/errors.h"

namespace trainguard {

struct QuarantinedSample {
  int64_t sample = 0;  // dataset index
  std::string file;    // its source (the image file, or "fashion-mnist[i]")
  std::string label;   // its raw label
  int64_t step = 0;    // the global step that failed on it
  int rank = 0;        // the rank whose batch held it
  std::string error;   // the first line of the step's error
};

// The quarantine file is unreadable, unwritable or holds a line that is not a record; names the
// file (and line). Run state beside the checkpoint, so it ends a run as a checkpoint error does.
class QuarantineError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};

// The records of `path` in file order; none when the file does not exist. Throws QuarantineError.
std::vector<QuarantinedSample> ReadQuarantine(const std::string& path);

struct QuarantineAppend {
  std::vector<QuarantinedSample> records;  // every record the file holds afterwards
  bool over_budget = false;                // nothing was added: the file would hold more than the limit
};

// Adds the records whose sample the file does not hold yet, unless the file would then hold more
// than `limit` samples (rewriting it atomically under an exclusive lock on PATH.lock, so that
// ranks appending at once neither lose records nor pass the limit together). Throws
// QuarantineError (naming the path and the reason) when it cannot be read or written.
QuarantineAppend AppendQuarantine(const std::string& path, const std::vector<QuarantinedSample>& add,
                                  int64_t limit = INT64_MAX);

// The sorted, distinct sample indices of `records`.
std::vector<int64_t> QuarantinedIndices(const std::vector<QuarantinedSample>& records);

// --max-quarantined: "N" (a count) or "P%" (a percentage of the training set). Returns the
// largest number of samples a run may set aside for a set of `dataset_size` samples (a
// percentage gives at least 1). Throws ConfigError naming the flag on anything else.
int64_t QuarantineBudget(const std::string& text, int64_t dataset_size);

// The records as one JSON array of the file's objects.
std::string QuarantineJsonArray(const std::vector<QuarantinedSample>& records);

// "sample 12 (training/3_7.jpg, label '11') at step 4 on rank 1", one per line.
std::string FormatQuarantine(const std::vector<QuarantinedSample>& records);

}  // namespace trainguard
