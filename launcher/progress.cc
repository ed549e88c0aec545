// Rank 0's progress output (see progress.h).
#include "launcher/progress.h"

#include <unistd.h>

#include <cstdio>

#include "trainer/core/log.h"

namespace trainguard {

ProgressPrinter::ProgressPrinter(bool enabled, int64_t epochs, int64_t log_every)
    : enabled_(enabled), terminal_(isatty(STDERR_FILENO) == 1), epochs_(epochs), log_every_(log_every) {}

void ProgressPrinter::OnEpochBegin(int64_t, EpochPlan&) {
  window_images_ = 0;
  window_start_ = std::chrono::steady_clock::now();
}

void ProgressPrinter::OnStepEnd(const StepReport& r) {
  if (!enabled_) return;
  window_images_ += r.global_images;
  const bool last = r.step_in_epoch == r.steps_per_epoch;
  if (!terminal_ && r.global_step % log_every_ != 0 && !last) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start_).count();
  char line[200];
  std::snprintf(line, sizeof line, "epoch %lld/%lld step %lld/%lld loss %.4f %.0f img/s",
                static_cast<long long>(r.epoch + 1), static_cast<long long>(epochs_),
                static_cast<long long>(r.step_in_epoch), static_cast<long long>(r.steps_per_epoch), r.loss,
                seconds > 0 ? window_images_ / seconds : 0.0);
  if (terminal_) {
    std::fprintf(stderr, "\r%s\033[K%s", line, last ? "\n" : "");
    std::fflush(stderr);
  } else {
    LogLine(line);
  }
}

void ProgressPrinter::OnEpochEnd(const EpochReport& r) {
  if (!enabled_) return;
  if (r.test_accuracy >= 0) {
    std::printf("epoch %lld: mean loss %.4f, test accuracy %.4f (%lld/%lld)\n", static_cast<long long>(r.epoch + 1),
                r.mean_loss, r.test_accuracy, static_cast<long long>(r.test_correct),
                static_cast<long long>(r.test_total));
  } else {
    std::printf("epoch %lld: mean loss %.4f\n", static_cast<long long>(r.epoch + 1), r.mean_loss);
  }
  std::fflush(stdout);
}

}  // namespace trainguard
