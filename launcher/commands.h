// The subcommands, one file each: train (train_command.cc), validate (validate_command.cc),
// predict (predict_command.cc), which run as MPI jobs inside RunJob; diagnose, make-folder and
// shrink-folder (tool_commands.cc), which run without MPI.
#pragma once

#include "launcher/cli.h"
#include "launcher/job.h"

namespace trainguard {

// Each returns the exit code; a failure throws (RunJob ends the rank through StopRank).
int Train(const Command& command, Job& job);
int Validate(const Command& command, Job& job);
int Predict(const Command& command, Job& job);

// Predict's set-up, before the job is prepared: the model settings (dataset, width, class count,
// image size, precision) come from the --checkpoint file's record; one given with another value
// throws ConfigError naming both (TakeModelShape). A checkpoint without the record (written
// before trainguard kept it) leaves the settings as given, as before. Rank 0 logs which it was.
void TakeCheckpointModel(Command& command, Job& job);

// No MPI: each catches its own errors and returns their exit code.
int RunDiagnose(const Command& command);
int RunMakeFolder(const Command& command);
int RunShrinkFolder(const Command& command);

}  // namespace trainguard
