// Prometheus metrics of one rank (prometheus-cpp): what the trainer's observer reports goes in
// as plain values, and comes out as a /metrics endpoint (port base + local rank), a push to the
// Pushgateway (replacing this rank's group), a textfile for node_exporter's textfile collector
// and, on rank 0, a file_sd targets file. Pure: no Torch, no MPI. Every series is named
// trainguard_*, in base units, and carries the labels job, rank, local_rank and host.
//
// Metrics never stops training: the observer methods are cheap and do no I/O; the outputs
// return a warning for the caller to print instead of throwing (except Start() when required).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "diagnostics/metrics/file_sd.h"
#include "diagnostics/metrics/gpu_health.h"

namespace trainguard {

// A bad MetricsOptions value, or a required endpoint that did not start.
class MetricsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct MetricsOptions {
  std::string job = "trainguard";  // label job; the Pushgateway job. Letters, digits, '_', '.', '-' only
  int rank = 0;                    // label rank; the Pushgateway group
  int local_rank = 0;              // label local_rank; offsets the port
  int world_size = 1;              // label world_size of trainguard_run_info
  std::string host;                // label host; empty: this machine's host name
  int port_base = -1;              // -1: no endpoint; 0: a free port; else port = port_base + local_rank
  std::string bind = "0.0.0.0";    // numeric IPv4 address the endpoint listens on
  bool required = false;           // a failed endpoint start, or an unwritable textfile folder, throws MetricsError
  std::string pushgateway_url;     // "http://HOST:PORT" of the Pushgateway; empty: no push
  double push_timeout_s = 3;       // the longest Push() keeps its caller waiting
  std::string textfile_dir;        // folder of node_exporter's textfile collector; empty: no textfile
  std::string targets_file;        // file_sd JSON path rank 0 writes; empty: none
  int max_class_series = 100;      // trainguard_labels_per_class has series for classes below this only
};

// Bad-label counts by kind, as label validation reports them (label kind of trainguard_labels).
struct LabelCounts {
  int64_t valid = 0;
  int64_t ignored = 0;
  int64_t negative = 0;
  int64_t too_large = 0;
  int64_t unparsable = 0;
};

// What the run is (labels of trainguard_run_info; world_size comes from the options).
struct RunInfo {
  std::string version;     // trainguard's version
  std::string data_plane;  // "mpi" or "nccl"
  std::string device;      // "cpu" or "cuda"
  std::string precision;   // "fp32", ...
};

// The failure kinds of trainguard_failures_total (each series exists at 0 from the start); any
// other kind is counted as "internal".
extern const char* const kFailureKinds[11];
// The phases of trainguard_phase{phase}: starting (until the first epoch's label validation),
// validating, training, evaluating, checkpointing, stopping (after a failure or a stop request)
// and finished (a clean end).
extern const char* const kPhases[7];

class Metrics {
 public:
  // Registers every metric family. Throws MetricsError naming the field when an option is bad
  // (job not URL-safe, bind not numeric IPv4, port_base < -1 or above 65535, a malformed
  // pushgateway_url, push_timeout_s <= 0, max_class_series < 0). Starts nothing.
  explicit Metrics(const MetricsOptions& options);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Observer methods: cheap, non-blocking, no I/O, safe from any thread.

  // Sets trainguard_run_info{version,world_size,data_plane,device,precision} = 1 (replacing an
  // earlier call's series).
  void SetRunInfo(const RunInfo& info);
  // One successful step of `seconds`: steps_total += 1, samples_total += samples, loss = loss,
  // the step duration histogram, the loader and all-reduce wait totals, ignored_targets_total
  // += ignored_targets, and last_success_timestamp_seconds = last_progress_timestamp_seconds =
  // now (unix time).
  void OnStep(double seconds, int64_t samples, double loss, double loader_wait_s, double allreduce_wait_s,
              int64_t ignored_targets);
  // The end of an epoch: epoch, loss = mean_loss (the loss gauge holds the last step's loss
  // during an epoch and the epoch's mean after it), the accuracies that are known, and
  // samples_per_second.
  void OnEpochEnd(int64_t epoch, double mean_loss, std::optional<double> train_accuracy,
                  std::optional<double> eval_accuracy, double samples_per_second);
  // A checkpoint written: checkpoints_total += 1, its duration and size, and progress.
  void OnCheckpoint(double seconds, int64_t bytes);
  // Label validation's counts: trainguard_labels{kind} and trainguard_labels_per_class{class}
  // for classes below max_class_series (classes above are counted in "valid" only).
  void SetLabelCounts(const LabelCounts& counts, const std::vector<int64_t>& per_class);
  void AddUnreadableImages(int64_t count);
  // The rank enters `phase` (one of kPhases; any other sets none to 1): trainguard_phase and
  // last_progress_timestamp_seconds = now.
  void SetPhase(const std::string& phase);
  // Progress within a phase (an evaluation batch): last_progress_timestamp_seconds = now.
  void OnProgress();
  // trainguard_progress_deadline_seconds: how long the rank may go without progress before
  // trainguard ends the run itself; the no-progress alert compares the silence with it.
  void SetProgressDeadline(double seconds);
  // trainguard_wait_deadline_seconds{phase}: how long a wait in `phase` (a step, an evaluation...)
  // may last before this rank calls it a stall (learned from the run, at most --step-timeout).
  void SetWaitDeadline(const std::string& phase, double seconds);
  // A step's compute time (its time less its waits): step_compute_seconds_total += seconds.
  void AddStepCompute(double seconds);
  // trainguard_step_compute_ratio: this rank's own time per step (compute and loader wait) over
  // the other ranks' median, in the last window of steps.
  void SetStepComputeRatio(double ratio);
  // trainguard_peer_silent{peer_rank, peer_host} = 1 for each rank this rank could not hear
  // when it stopped (rank -> host).
  void SetSilentPeers(const std::map<int, std::string>& peers);
  // trainguard_failures_total{kind} += 1 (`kind` is one of kFailureKinds) and SetExitCode.
  void OnFailure(const std::string& kind, int exit_code);
  // The rank will exit with `exit_code`: trainguard_exit_code = exit_code, which tells the
  // no-progress alert that the series stop on purpose, and the phase "finished" (0) or "stopping".
  void SetExitCode(int exit_code);
  // A stop on request with its checkpoint (exit 12): trainguard_preemptions_total += 1. Not a failure.
  void OnPreemption();
  // The run ended cleanly: trainguard_finished_timestamp_seconds = now (unix time), which tells
  // the silence alerts that its series stop moving on purpose, and SetExitCode(0).
  void OnFinished();
  // trainguard_quarantined_samples_total += count: samples set aside (rank 0 counts the job's).
  void AddQuarantinedSamples(int64_t count);
  void SetGpuMemory(int64_t allocated_bytes, int64_t reserved_bytes);
  // trainguard_restarts: how many times the launcher restarted the job before this run;
  // trainguard_restarts_in_place: how many of them stayed in the allocation or pod;
  // trainguard_excluded_node{node} = 1 for each node the launcher left out after failures.
  void SetRestarts(int64_t restarts, int64_t in_place, const std::vector<std::string>& excluded_nodes);
  // trainguard_lost_training_seconds: at a failure, the training time since the last checkpoint
  // (or since this run began), which a resumed run must redo.
  void SetLostTrainingSeconds(double seconds);
  // A GpuHealthReader's reading, as series labelled gpu = health.bus_id (one set per GPU):
  // trainguard_gpu_utilization_ratio, _memory_used_bytes, _memory_total_bytes,
  // _temperature_celsius, _power_watts, _throttled{reason} (1 or 0 for each of kThrottleReasons)
  // and _ecc_errors{type="corrected"|"uncorrected"} (the volatile counts: a gauge, as they reset
  // when the driver reloads). A value the reading lacks has no series (an earlier one is removed).
  void SetGpuHealth(const GpuHealth& health);
  // An Xid event: trainguard_gpu_xid_events_total{gpu, xid} += 1; a double-bit ECC event:
  // trainguard_gpu_double_bit_ecc_events_total{gpu} += 1.
  void OnGpuEvent(const GpuEvent& event);

  // Outputs: I/O, each bounded in time. Each returns "" on success or when the option that
  // enables it is empty, else a warning that names the address or path and the reason.

  // Starts the endpoint when port_base >= 0 and checks that it answers GET /metrics with 200
  // (within 2 s). On failure returns the warning (address and civetweb's own reason) and the
  // metrics stay usable without an endpoint; with `required` throws MetricsError instead.
  // A second call does nothing.
  std::string Start();
  // The bound port of the endpoint; 0 when there is none.
  int port() const;
  // How many times the endpoint served /metrics (its own start probe not counted). Thread-safe.
  int64_t scrapes() const;
  // This rank's endpoint as a file_sd target, for rank 0 to gather: the address scrapers reach it
  // at (the bind address; on all interfaces, the host name) and port().
  Target SelfTarget() const;
  // Rank 0: writes targets_file (FileSdJson of the gathered targets) atomically.
  std::string WriteTargetsFile(const std::vector<Target>& targets) const;
  // Checks at start that textfile_dir is a folder this process can write: "" when it is (or when
  // there is none), else the warning, said once (later failed writes add nothing until one
  // succeeds); with `required` throws MetricsError instead.
  std::string CheckTextfile();
  // Pushes this rank's metrics to pushgateway_url, replacing the group job/rank. Returns within
  // about push_timeout_s even when the Pushgateway accepts and never answers.
  std::string Push() const;
  // Writes textfile_dir/trainguard_<job>_rank<R>.prom in the text exposition format, atomically.
  std::string WriteTextfile() const;
  // The text exposition of every series now (what /metrics serves).
  std::string Text() const;
  const MetricsOptions& options() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace trainguard
