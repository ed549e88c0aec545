// TrainConfig: everything a training run is told, with its default. The launcher fills it
// from flags, a config file and TRAINGUARD_* variables; below the launcher it is read-only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace trainguard {

struct TrainConfig {
  // --- data ---
  std::string dataset = "fashion-mnist";                       // "fashion-mnist", "synthetic" or "folder"
  std::string data_dir = "/usr/share/datasets/fashion-mnist";  // IDX .gz files, or the JPEG folder
  std::string manifest;                                        // folder dataset: a "path,label" CSV instead of a folder
  std::string eval_dir;              // folder dataset: labelled JPEG folder scored after each epoch
  int64_t image_size = 128;          // folder dataset: side of the square model input
  bool augment = true;               // folder dataset: random resized crop + flip when training
  std::string unreadable = "fail";   // folder dataset: "fail" or "skip" unreadable files
  int64_t train_samples = 0;         // use only the first N training samples (0: all)
  int64_t test_samples = 0;          // use only the first N test samples (0: all)
  int64_t synthetic_samples = 2048;  // size of the synthetic training set
  int64_t synthetic_classes = 10;    // classes of the synthetic set
  int64_t num_classes = 0;           // model outputs; 0: the dataset's class count

  // --- model ---
  double width = 1.0;  // channel multiplier of the HW3 classifier (1.0: 64-128-256-512-512)

  // --- optimisation ---
  int64_t epochs = 2;          // passes over the training set
  int64_t batch_size = 64;     // samples per rank per step
  double lr = 3e-4;            // Adam learning rate
  double weight_decay = 1e-5;  // Adam L2 penalty
  int64_t ignore_index = -1;   // target value that the loss skips
  uint64_t seed = 0;           // model init and shuffling
  int64_t max_steps = 0;       // stop after this many steps in all (0: no limit)
  bool evaluate = true;        // measure test accuracy after each epoch

  // --- runtime ---
  std::string device = "auto";        // "auto", "cpu" or "cuda"
  std::string precision = "fp32";     // the training forward pass: "fp32" or "bf16" (autocast)
  std::string fused_blocks = "auto";  // BatchNorm-ReLU-pool fused in training: "auto", "on", "off"
  std::string data_plane = "auto";    // gradients: "auto" (NCCL on CUDA, MPI on CPU), "nccl" or "mpi"
  std::string store_addr;             // NCCL bootstrap: address peers reach rank 0's TCPStore at (empty: its IP)
  int64_t store_port = 0;             // NCCL bootstrap: TCP port of rank 0's TCPStore (0: any free port)
  int64_t liveness_port = 0;          // UDP port of rank 0's liveness hub (0: any free port)
  std::string run_config = "trainguard-run.toml";  // the whole resolved configuration, by rank 0 (empty: none)
  int64_t threads = 0;                             // intra-op threads per rank (0: cores / ranks on the node)
  double bucket_mb = 25.0;                         // gradient all-reduce bucket size, MiB
  bool check_images = false;   // decode every image of the folder before training (the dataset doctor)
  int64_t min_image_side = 8;  // the doctor calls readable images with a shorter side suspicious (warns)
  int64_t loader_threads = 1;  // threads building batches ahead of the steps (0: on the training thread)
  int64_t prefetch = 4;        // batches built ahead at most (at least loader_threads)
  int64_t log_every = 50;      // a log line every N steps when not on a terminal
  int64_t warmup_steps = 5;    // steps left out of the throughput figure

  // --- labels ---
  bool validate_labels = true;                          // check every rank's labels before each epoch
  std::string bad_labels = "fail";                      // action for every bad kind: fail, ignore or drop
  std::string negative_labels;                          // action for negative labels (empty: bad_labels)
  std::string too_large_labels;                         // action for labels >= num_classes (empty: bad_labels)
  std::string unparsable_labels;                        // action for non-integer labels (empty: bad_labels)
  std::string label_report = "trainguard-labels.json";  // JSON report of rank 0 (empty: none)
  int64_t max_offenders = 10;                           // offenders listed per kind
  std::vector<std::string> plant_labels;                // "INDEX=LABEL": replace labels, for tests and demos

  // --- faults ---
  double step_timeout = 300;  // seconds; a step or collective that overruns it is a stall
  double fault_grace = 60;    // seconds ranks wait for each other when stopping on a fault (the failing
                              // rank's diagnosis gets this minus 5 s)
  std::string bundle_dir = "trainguard-faults";  // repro bundles: <dir>/step<N>-rank<R>
  std::string log_dir;           // each rank also appends its log lines to <dir>/rank<R>.log (empty: stderr only)
  bool diagnose = true;          // the failing rank runs `trainguard diagnose` on its bundle
  int64_t host_copy_every = 50;  // GPU runs: steps between host copies of the weights
  std::vector<std::string> inject_faults;  // KIND:rank=R:step=K[:seconds=S], tests and demos
  // A step that fails on its data: "fail" stops the job; "quarantine" sets the samples its
  // diagnosis names aside (in the quarantine file) and goes on from the last checkpoint without
  // them, in the same process where the device survived, else by exit 15 and a rerun.
  std::string bad_samples = "fail";
  std::string quarantine;                // the quarantine file (empty: <checkpoint>.quarantine)
  std::string max_quarantined = "0.1%";  // samples set aside before the job fails: "N" or "P%" of the training set
  bool quarantine_by_restart = false;    // quarantine by exit 15 even where the process survives (tests)

  // --- metrics (diagnostics/metrics) ---
  int64_t metrics_port = -1;               // /metrics on port BASE + local rank (0: a free port; -1: none)
  std::string metrics_bind = "0.0.0.0";    // numeric IPv4 address the endpoint listens on
  bool metrics_required = false;           // a failed endpoint start stops the job (exit 2) instead of a warning
  std::string metrics_targets;             // file_sd JSON of every rank's endpoint, by rank 0 (empty: none)
  std::string metrics_job = "trainguard";  // the job label and Pushgateway job
  std::string pushgateway;                 // http://HOST:PORT: push at epoch ends and on every exit (empty: none)
  double push_timeout = 3;                 // seconds a push may delay the job at most
  std::string metrics_textfile;            // folder for node_exporter's textfile collector (empty: none)
  // Seconds a stopping rank whose endpoint has been scraped waits for one more scrape (a bit over
  // the shipped PodMonitor's 15 s interval), so that its failure is seen; 0: no wait.
  double metrics_linger = 20;

  // --- prediction ---
  std::string predictions = "predictions.csv";  // predict: the submission CSV rank 0 writes

  // --- checkpoints ---
  std::string checkpoint;        // file to write (empty: none)
  int64_t checkpoint_every = 0;  // also write every N steps (0: at epoch ends only)
  // "no"; "yes": start from --checkpoint, which must exist; "auto": start from it when it
  // exists, afresh otherwise (the same command line serves the first run and every requeue).
  std::string resume = "no";
  double preempt_grace = 20;      // seconds after SIGTERM to agree on a checkpoint before exit 6
  int64_t restart_count = 0;      // how many times the launcher restarted this job before (slurm/, k8s/ set it)
  int64_t restarts_in_place = 0;  // of those, restarts inside the allocation or pod
  std::vector<std::string> excluded_nodes;  // nodes the launcher left out of this run after failures
};

// Checks relations between fields that single-flag checks cannot see.
// Throws ConfigError naming the flag and what to do.
void ValidateTrainConfig(const TrainConfig& config);

}  // namespace trainguard
