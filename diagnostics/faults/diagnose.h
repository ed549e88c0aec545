// The synchronous re-run of a failed step (`trainguard diagnose BUNDLE`, started by the failing
// rank in a child process and runnable by hand on any machine). The step is re-run as training
// ran it (rerun.h): training mode with the batch's own statistics, the training precision, the
// loss with the step's normalisation, backward and the gradient-norm check. In order:
//  1. reproduce on the bundle's device when there is one (CUDA_LAUNCH_BLOCKING=1, so a
//     device-side assert surfaces at its kernel), else the CPU;
//  2. check the targets against [0, num_classes) and the ignore index;
//  3. check the weights: a NaN or infinite parameter is the cause, named with the step whose
//     update last changed it;
//  4. check the inputs for non-finite values;
//  5. re-run the step: the first module whose output is not finite (forward), or the first
//     module and parameter, in backward order, whose gradient is not finite, as anomaly mode
//     names it (backward); then bisect the batch to the rows that make it fail;
//  6. re-run it in the other precision and in eval mode, to say under which it fails.
// Localisation runs on the step's GPU when the reproduction left it usable, else on the CPU.
// The report names the kind of fault, the module and operation, the parameter, the samples with
// their files and labels, the rank and step, the weights' growth in the last good step, and a hint.
#pragma once

#include <string>
#include <vector>

#include "diagnostics/faults/bundle.h"

namespace trainguard {

struct Diagnosis {
  std::string fault;                // bad_label, non_finite_weights, non_finite_input, non_finite_activation,
                                    // non_finite_loss, non_finite_gradient, exception, not_reproduced
  std::string module;               // e.g. "features.0 (Conv2d)", "loss"
  std::string operation;            // e.g. "cross_entropy / nll_loss", "AddmmBackward0"
  std::string parameter;            // the parameter at fault (weights, gradient), e.g. "classifier.5.weight"
  bool reproduced = false;          // the re-run as the step ran failed
  std::string mode;                 // how the step ran: "training mode, fp32"
  std::string modes;                // the outcome under each mode and precision tried
  std::string differs;              // what fails only under some of them, or ""
  std::string weights_growth;       // the weights' growth in the last good step's update, or ""
  bool cut_short = false;           // the budget ran out: modes untried, rows not bisected to the end
  std::string reproduction;         // what the re-run on the bundle's device said
  std::string device_assert;        // the kernel assertion the device printed in the re-run (CUDA), or ""
  std::string detail;               // the error or the finiteness finding
  std::vector<int64_t> rows;        // smallest failing subset, rows of the batch
  std::vector<int64_t> samples;     // their dataset indices
  std::vector<std::string> files;   // their sources
  std::vector<std::string> labels;  // their raw labels
  std::string hint;
  BundleMeta meta;
};

// `budget_s`: the seconds the diagnosis has (0: no limit). The reproduction, the checks and the
// localisation always run; the other modes and the bisection only while a re-run still fits, and
// the report says when they were cut short.
Diagnosis Diagnose(const Bundle& bundle, double budget_s = 0);

std::string FormatDiagnosis(const Diagnosis& d);
std::string DiagnosisJson(const Diagnosis& d);

}  // namespace trainguard
