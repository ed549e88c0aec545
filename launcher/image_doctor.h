// The dataset doctor in the subcommands: with --check-images (train) or --images (validate),
// every rank decodes every image of its part of the folder before the first epoch, and rank 0
// lists every unreadable and every suspicious (tiny) file at once, in the summary and in the
// label report's JSON; unreadable files then follow --unreadable (fail: exit 3, skip: a warning).
#pragma once

#include "diagnostics/labels/label_guard.h"
#include "launcher/job.h"
#include "trainer/core/config.h"

namespace trainguard {

// Collective. Does nothing unless config.check_images and the training set is a folder. Throws
// DataError on every rank when files are unreadable under --unreadable fail. Hands the findings
// to `labels` for its JSON report.
void CheckImagesFirst(const TrainConfig& config, Job& job, LabelGuard& labels);

}  // namespace trainguard
