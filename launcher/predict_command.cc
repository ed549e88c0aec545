// `trainguard predict`.
#include <cstdio>
#include <optional>
#include <string>

#include "launcher/commands.h"
#include "launcher/exit_codes.h"
#include "launcher/metrics_report.h"
#include "launcher/signals.h"
#include "trainer/checkpoint.h"
#include "trainer/core/atomic_file.h"
#include "trainer/core/errors.h"
#include "trainer/core/log.h"
#include "trainer/predict.h"
#include "trainer/train.h"

namespace trainguard {

void TakeCheckpointModel(Command& command, Job& job) {
  TrainConfig& config = command.train;
  if (config.checkpoint.empty()) throw ConfigError("predict needs --checkpoint FILE, a checkpoint written by train");
  const std::optional<ModelShape> saved = ReadModelShape(config.checkpoint);
  if (!saved) {
    if (job.mpi.rank() == 0) {
      LogLine("checkpoint " + config.checkpoint +
              " records no model shape (written by an older trainguard): the model is built from the flags "
              "(--dataset, --width, --num-classes, --image-size), which must be those it was trained with");
    }
    return;
  }
  const auto given = [&](const std::string& name) {
    const auto it = command.given.find(name);
    return it == command.given.end() ? std::string() : it->second;
  };
  TakeModelShape(*saved, config.checkpoint, given, config);
  if (job.mpi.rank() == 0) LogLine("the model of checkpoint " + config.checkpoint + ": " + ModelShapeText(*saved));
}

// `trainguard predict`: the model of --checkpoint over the --data-dir images; rank 0 writes
// HW3's submission CSV to --predictions. With a metrics output, a failure is pushed and written.
int Predict(const Command& command, Job& job) {
  const TrainConfig& config = command.train;
  job.watch->SetPhase("the start of the metrics");
  StartJobMetrics(config, job);
  SignalMetricsScope signal_metrics(job.metrics.get());
  Hw3Net model = MakeModel(config, *job.train);
  LoadModelWeights(config.checkpoint, *model);
  model->to(job.device);
  job.watch->SetPhase("the prediction");
  const auto predictions =
      PredictAll(model, *job.train, job.control, job.device, config.batch_size, LoaderFor(config, job.device));
  if (job.mpi.rank() == 0) {
    WriteFileAtomically(config.predictions, SubmissionCsv(*job.train, predictions));
    std::printf("%s", PredictionSummary(*job.train, predictions).c_str());
    std::printf("wrote %zu predictions to %s\n", predictions.size(), config.predictions.c_str());
  }
  FlushMetrics(job.metrics.get());
  return kExitOk;
}

}  // namespace trainguard
