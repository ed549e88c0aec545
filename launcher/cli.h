// Command-line parsing: the only place that reads argv and TRAINGUARD_* variables. Precedence:
// a flag on the command line, then the environment, then the --config file, then the default
// (docs/flags.md). A single-value flag given twice on the command line is a usage error.
// Subcommands: train, validate, predict, diagnose BUNDLE, make-folder OUT, shrink-folder SOURCE OUT,
// env, completion; --version. The options are shared (one config file serves every subcommand) and declared
// by group; each subcommand uses some groups, lists them in its --help and refuses, on the command
// line, an option it does not use.
#pragma once

#include <map>
#include <string>

#include "trainer/core/config.h"
#include "trainer/data/shrink_folder.h"

namespace trainguard {

struct Command {
  enum class Kind { kExit, kTrain, kValidate, kDiagnose, kMakeFolder, kShrinkFolder, kPredict, kEnv, kVersion };
  Kind kind = Kind::kExit;
  int exit_code = 0;    // for kExit: help (0) or usage error (2)
  std::string message;  // for kExit: the help text or the error, for rank 0 to print
  TrainConfig train;
  std::string resolved;      // the resolved configuration, in config-file syntax, every option
  std::string resolved_set;  // the same, only the options set (flag, config file or environment)
  // The shared options set, by long name without dashes, each with where its value came from:
  // "--name" (the command line), its TRAINGUARD_* variable, or "the --config file".
  std::map<std::string, std::string> given;
  std::string bundle;           // for kDiagnose: the bundle folder; for kMakeFolder, kShrinkFolder: the output folder
  std::string source;           // for kShrinkFolder: the folder to read
  double diagnosis_budget = 0;  // for kDiagnose: the seconds it has (--time-budget; 0: no limit)
  ShrinkOptions shrink;         // for kShrinkFolder; short_side 0: 5/4 x --image-size, set when it runs
};

// Parses argv and the TRAINGUARD_* environment; prints nothing. A bad value, or a single-value
// flag given twice, yields kExit(2) with a message naming the flag, and an unknown TRAINGUARD_* variable is an error
// too (a typo must not be silently ignored).
Command ParseCommandLine(int argc, const char* const* argv);

// The default --metrics-job of a Slurm job: "<SLURM_JOB_NAME>-<SLURM_JOB_ID>" (name "trainguard"
// when empty), characters other than letters, digits, '_', '.' and '-' made '_'. One identity per
// job: a requeued job keeps its id, a new job gets a new one. "" when `job_id` is empty.
std::string SlurmMetricsJob(const std::string& job_name, const std::string& job_id);

}  // namespace trainguard
