// The synchronous re-run of a failed step (`trainguard diagnose BUNDLE`, started by the failing
// rank in a child process and runnable by hand on any machine). In order:
//  1. reproduce: the batch through the model and the loss on the bundle's device when there is
//     one (CUDA_LAUNCH_BLOCKING=1, so a device-side assert surfaces at its kernel), else the CPU;
//  2. check the targets against [0, num_classes) and the ignore index, and the inputs for
//     non-finite values;
//  3. run the model module by module (eval mode, on the CPU: a CUDA context is unusable after
//     an assert) with a finiteness check after each, then the loss;
//  4. bisect the batch to the smallest failing subset of rows.
// The report names the kind of fault, the module and operation, the samples with their files
// and labels, the rank and step, and a hint.
#pragma once

#include <string>
#include <vector>

#include "diagnostics/faults/bundle.h"

namespace trainguard {

struct Diagnosis {
  std::string fault;                // bad_label, non_finite_input, non_finite_activation, non_finite_loss,
                                    // exception, not_reproduced
  std::string module;               // e.g. "features.0 (Conv2d)", "loss"
  std::string operation;            // e.g. "cross_entropy / nll_loss"
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

Diagnosis Diagnose(const Bundle& bundle);

std::string FormatDiagnosis(const Diagnosis& d);
std::string DiagnosisJson(const Diagnosis& d);

}  // namespace trainguard
