// The cost of the metrics piece by piece, in CPU time, which the other jobs of a shared machine
// disturb far less than wall-clock step times: one Metrics::OnStep call (what every step pays),
// the CPU that civetweb's threads spend serving one scrape of /metrics (what each scrape takes
// from training on a busy machine), Metrics::Text(), and one WriteTextfile() (once per epoch,
// wall time: it fsyncs). Each is the median of `batches` batches. Then the projected share of a
// step: (OnStep + scrapes per step x scrape CPU) / step time, for a 1 s scrape interval.
//   build/bench/metrics_overhead_bench [STEP_SECONDS=0.2] [SCRAPES_PER_BATCH=200] [BATCHES=7]
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "diagnostics/metrics/http_get.h"
#include "diagnostics/metrics/metrics.h"

namespace trainguard {
namespace {

double CpuSeconds(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}
double WallSeconds() { return CpuSeconds(CLOCK_MONOTONIC); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The series of a run on 10 classes, as a scrape during training sees them.
void Fill(Metrics& m) {
  m.SetRunInfo({"bench", "mpi", "cpu", "fp32"});
  m.SetLabelCounts({3000, 0, 0, 0, 0}, std::vector<int64_t>(10, 300));
  for (int i = 0; i < 30; ++i) m.OnStep(0.2 + 0.01 * (i % 7), 128, 2.0, 0.001, 0.01, 0);
  m.OnEpochEnd(1, 1.5, std::nullopt, std::nullopt, 600);
}

int Run(double step_s, int scrapes, int batches) {
  char dir_template[] = "/tmp/tg_metrics_bench_XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) {
    std::fprintf(stderr, "metrics_overhead_bench: mkdtemp failed\n");
    return 1;
  }
  MetricsOptions o;
  o.port_base = 0;
  o.bind = "127.0.0.1";
  o.textfile_dir = dir;
  Metrics m(o);
  const std::string warning = m.Start();
  if (!warning.empty()) {
    std::fprintf(stderr, "metrics_overhead_bench: %s\n", warning.c_str());
    return 1;
  }
  Fill(m);

  constexpr int kCalls = 200000;
  std::vector<double> on_step, scrape_cpu, scrape_wall, text, textfile;
  size_t scrape_bytes = 0;
  for (int b = 0; b < batches; ++b) {
    double t0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < kCalls; ++i) m.OnStep(0.2, 128, 2.0, 0.001, 0.01, 0);
    on_step.push_back((CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - t0) / kCalls);

    // The server's CPU: the whole process's minus this (the client's) thread's.
    const double process0 = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
    const double client0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    const double wall0 = WallSeconds();
    for (int i = 0; i < scrapes; ++i) {
      const HttpResponse r = HttpGet("127.0.0.1", m.port(), "/metrics", 5);
      if (r.status != 200) {
        std::fprintf(stderr, "metrics_overhead_bench: scrape failed: %d %s\n", r.status, r.error.c_str());
        return 1;
      }
      scrape_bytes = r.body.size();
    }
    const double client = CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - client0;
    scrape_cpu.push_back((CpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - process0 - client) / scrapes);
    scrape_wall.push_back((WallSeconds() - wall0) / scrapes);

    t0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < 200; ++i) scrape_bytes = std::max(scrape_bytes, m.Text().size());
    text.push_back((CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - t0) / 200);

    t0 = WallSeconds();
    const std::string failed = m.WriteTextfile();
    textfile.push_back(WallSeconds() - t0);
    if (!failed.empty()) {
      std::fprintf(stderr, "metrics_overhead_bench: %s\n", failed.c_str());
      return 1;
    }
  }
  std::remove((std::string(dir) + "/trainguard_trainguard_rank0.prom").c_str());
  std::remove(dir);

  const double per_step = Median(on_step) + step_s * Median(scrape_cpu);  // 1 scrape per second
  std::printf("batches %d (medians), exposition %zu bytes\n", batches, scrape_bytes);
  std::printf("%-44s %12.3f us (CPU)\n", "Metrics::OnStep, one call", Median(on_step) * 1e6);
  std::printf("%-44s %12.3f us (CPU), %.3f us wall\n", "one scrape of /metrics, server threads",
              Median(scrape_cpu) * 1e6, Median(scrape_wall) * 1e6);
  std::printf("%-44s %12.3f us (CPU)\n", "Metrics::Text()", Median(text) * 1e6);
  std::printf("%-44s %12.3f us (wall, with fsync)\n", "Metrics::WriteTextfile(), once per epoch",
              Median(textfile) * 1e6);
  std::printf("projected at %.3f s per step and 1 scrape/s: %.3f us per step = %.5f%% of the step time\n", step_s,
              per_step * 1e6, 100 * per_step / step_s);
  return 0;
}

}  // namespace
}  // namespace trainguard

int main(int argc, char** argv) {
  const double step_s = argc > 1 ? std::atof(argv[1]) : 0.2;
  const int scrapes = argc > 2 ? std::atoi(argv[2]) : 200;
  const int batches = argc > 3 ? std::atoi(argv[3]) : 7;
  if (!(step_s > 0) || scrapes < 1 || batches < 1) {
    std::fprintf(stderr, "usage: metrics_overhead_bench [STEP_SECONDS>0] [SCRAPES_PER_BATCH>=1] [BATCHES>=1]\n");
    return 2;
  }
  return trainguard::Run(step_s, scrapes, batches);
}
