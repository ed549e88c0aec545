// Flags, config file and environment, parsed with CLI11 (see cli.h).
#include "launcher/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <vector>

#include "trainer/core/errors.h"

extern char** environ;

namespace trainguard {
namespace {

// "--batch-size" -> "TRAINGUARD_BATCH_SIZE"
std::string EnvNameOf(const std::string& long_name) {
  std::string env = "TRAINGUARD_";
  for (char c : long_name) env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return env;
}

// Numeric checks whose messages name the rule and the value given (CLI11's own range checks
// print the whole double range).
const CLI::Validator kPositive(
    [](std::string& v) {
      try {
        if (std::stod(v) > 0) return std::string();
      } catch (const std::exception&) {
      }
      return "must be a number > 0, got '" + v + "'";
    },
    "> 0");
const CLI::Validator kNonNegative(
    [](std::string& v) {
      try {
        if (std::stod(v) >= 0) return std::string();
      } catch (const std::exception&) {
      }
      return "must be a number >= 0, got '" + v + "'";
    },
    ">= 0");

// A flag's default as the configuration text shows it. (capture_default_str() records nothing
// for flags in CLI11 2.1: the resolved configuration showed "false" for flags that default to on.)
std::string BoolText(bool value) { return value ? "true" : "false"; }

// Data: the training, evaluation or prediction images and labels.
void AddDataOptions(CLI::App& cmd, TrainConfig& c) {
  cmd.add_option("--dataset", c.dataset, "fashion-mnist, synthetic or folder (JPEGs)")->capture_default_str();
  cmd.add_option("--data-dir", c.data_dir, "Fashion-MNIST IDX folder, or the JPEG folder")->capture_default_str();
  cmd.add_option("--manifest", c.manifest, "folder dataset: a path,label CSV instead of --data-dir");
  cmd.add_option("--eval-dir", c.eval_dir, "folder dataset: labelled JPEG folder for test accuracy");
  cmd.add_option("--image-size", c.image_size, "folder dataset: side of the square model input")->capture_default_str();
  cmd.add_flag("--augment,!--no-augment", c.augment, "folder dataset: random resized crop + flip when training")
      ->default_str(BoolText(c.augment));
  cmd.add_option("--unreadable", c.unreadable, "folder dataset: fail or skip unreadable images")->capture_default_str();
  cmd.add_option("--train-samples", c.train_samples, "use the first N training samples (0: all)")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_option("--test-samples", c.test_samples, "use the first N test samples (0: all)")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_option("--synthetic-samples", c.synthetic_samples, "size of the synthetic training set")
      ->check(kPositive)
      ->capture_default_str();
  cmd.add_option("--synthetic-classes", c.synthetic_classes, "classes of the synthetic set")
      ->check(CLI::Range(int64_t{2}, int64_t{100000}))
      ->capture_default_str();
  cmd.add_option("--num-classes", c.num_classes, "model outputs (0: the dataset's class count)")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_flag("--check-images,--images", c.check_images,
               "folder dataset: decode every image on every rank before training and list every unreadable one")
      ->default_str(BoolText(c.check_images));
  cmd.add_option("--min-image-side", c.min_image_side, "images with a shorter side are reported as suspicious")
      ->check(kPositive)
      ->capture_default_str();
  cmd.add_option("--loader-threads", c.loader_threads,
                 "threads building batches ahead, also for evaluation and predict (0: on the training thread)")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_option("--prefetch", c.prefetch, "batches built ahead at most (at least --loader-threads)")
      ->check(kPositive)
      ->capture_default_str();
  cmd.add_option("--seed", c.seed, "seed of model init and shuffling")->capture_default_str();
  cmd.add_flag("--eval,!--no-eval", c.evaluate, "measure test accuracy after each epoch")
      ->default_str(BoolText(c.evaluate));
}

// Model and training: the model and the optimisation.
void AddTrainingOptions(CLI::App& cmd, TrainConfig& c) {
  cmd.add_option("--width", c.width, "channel multiplier of the HW3 classifier")
      ->check(CLI::Range(1e-3, 16.0))
      ->capture_default_str();
  cmd.add_option("--epochs", c.epochs, "passes over the training set")->check(kPositive)->capture_default_str();
  cmd.add_option("--batch-size", c.batch_size, "samples per rank per step")->check(kPositive)->capture_default_str();
  cmd.add_option("--lr", c.lr, "Adam learning rate")->check(kPositive)->capture_default_str();
  cmd.add_option("--weight-decay", c.weight_decay, "Adam L2 penalty")->check(kNonNegative)->capture_default_str();
  cmd.add_option("--max-steps", c.max_steps, "stop after N steps in all (0: no limit)")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_option("--precision", c.precision,
                 "training forward pass: fp32, or bf16 (autocast; weights, gradients and Adam stay fp32)")
      ->capture_default_str();
  cmd.add_option("--fused-blocks", c.fused_blocks,
                 "training runs each BatchNorm-ReLU-max-pool as one fused operation: on, off, or auto (where "
                 "measured faster: not yet on any device)")
      ->capture_default_str();
  cmd.add_option("--log-every", c.log_every, "a log line every N steps when not on a terminal")
      ->check(kPositive)
      ->capture_default_str();
  cmd.add_option("--warmup-steps", c.warmup_steps, "steps left out of the throughput figure")
      ->check(kNonNegative)
      ->capture_default_str();
}

// Distribution and devices: devices, threads and the gradient all-reduce.
void AddDistributionOptions(CLI::App& cmd, TrainConfig& c) {
  cmd.add_option("--device", c.device, "auto, cpu or cuda")->capture_default_str();
  cmd.add_option("--data-plane", c.data_plane, "gradient all-reduce: auto (NCCL on CUDA, MPI on CPU), nccl or mpi")
      ->capture_default_str();
  cmd.add_option("--store-addr", c.store_addr, "NCCL bootstrap: address other ranks reach rank 0 at (default: its IP)");
  cmd.add_option("--store-port", c.store_port, "NCCL bootstrap: TCP port of rank 0's store (0: any free port)")
      ->check(CLI::Range(int64_t{0}, int64_t{65535}))
      ->capture_default_str();
  cmd.add_option("--liveness-port", c.liveness_port, "UDP port of rank 0's liveness hub (0: any free port)")
      ->check(CLI::Range(int64_t{0}, int64_t{65535}))
      ->capture_default_str();
  cmd.add_option("--threads", c.threads, "intra-op threads per rank (0: cores / ranks on the node)")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_option("--bucket-mb", c.bucket_mb, "gradient all-reduce bucket size in MiB")
      ->check(kPositive)
      ->capture_default_str();
}

// Label checks: label validation before each epoch.
void AddLabelOptions(CLI::App& cmd, TrainConfig& c) {
  cmd.add_flag("--validate-labels,!--no-validate-labels", c.validate_labels,
               "check every rank's labels before each epoch")
      ->default_str(BoolText(c.validate_labels));
  cmd.add_option("--bad-labels", c.bad_labels, "action for bad labels: fail, ignore or drop")->capture_default_str();
  cmd.add_option("--negative-labels", c.negative_labels, "action for negative labels (default: --bad-labels)");
  cmd.add_option("--too-large-labels", c.too_large_labels, "action for labels >= num_classes (default: --bad-labels)");
  cmd.add_option("--unparsable-labels", c.unparsable_labels, "action for non-integer labels (default: --bad-labels)");
  cmd.add_option("--ignore-index", c.ignore_index, "target value the loss skips")->capture_default_str();
  cmd.add_option("--label-report", c.label_report, "JSON label report written by rank 0 (empty: none)")
      ->capture_default_str();
  cmd.add_option("--max-offenders", c.max_offenders, "bad labels listed per kind")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_option("--plant-label", c.plant_labels, "INDEX=LABEL: replace a label (fault injection; repeatable)")
      ->delimiter(',');
}

// Faults and diagnosis: stalls, failures, repro bundles and logs.
void AddFaultOptions(CLI::App& cmd, TrainConfig& c) {
  cmd.add_option("--step-timeout", c.step_timeout, "seconds; a step or collective longer than this is a stall")
      ->check(kPositive)
      ->capture_default_str();
  cmd.add_option(
         "--fault-grace", c.fault_grace,
         "seconds ranks wait for each other when stopping on a fault; the failing rank's diagnosis gets this minus 5 s")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_option("--bundle-dir", c.bundle_dir, "folder for repro bundles of failed steps")->capture_default_str();
  cmd.add_option("--log-dir", c.log_dir,
                 "each rank also appends its log lines to DIR/rank<R>.log: on a node-local disk, what a rank cut off "
                 "the network concludes stays readable on its node");
  cmd.add_flag("--diagnose,!--no-diagnose", c.diagnose, "diagnose a failed step's bundle in a child process")
      ->default_str(BoolText(c.diagnose));
  cmd.add_option("--host-copy-every", c.host_copy_every, "GPU runs: steps between host copies of the weights")
      ->check(kPositive)
      ->capture_default_str();
  cmd.add_option("--inject-fault", c.inject_faults, "KIND:rank=R:step=K[:seconds=S], KIND nan|kill|sleep (tests)")
      ->delimiter(',');
  cmd.add_option("--bad-samples", c.bad_samples,
                 "a step that fails on its data: fail (stop the job, naming the samples) or quarantine (set the "
                 "samples its diagnosis names aside and go on from the last checkpoint; needs --checkpoint)")
      ->capture_default_str();
  cmd.add_option("--quarantine", c.quarantine,
                 "file of the samples set aside, read at start and appended to (empty: <--checkpoint>.quarantine)");
  cmd.add_option("--max-quarantined", c.max_quarantined,
                 "samples a run may set aside before it fails as with fail: a count (10) or a share of the training "
                 "set (0.1%)")
      ->capture_default_str();
  cmd.add_flag("--quarantine-by-restart", c.quarantine_by_restart,
               "quarantine by exiting with code 15 (rerun me) even where the process could go on, as after a CUDA "
               "device-side assert (tests)");
  cmd.add_option("--run-config", c.run_config, "file rank 0 writes the whole resolved configuration to (empty: none)")
      ->capture_default_str();
}

// Metrics: the Prometheus endpoint, Pushgateway and textfile.
void AddMetricsOptions(CLI::App& cmd, TrainConfig& c) {
  cmd.add_option("--metrics-port", c.metrics_port, "serve /metrics on port BASE + local rank (0: a free port; -1: off)")
      ->check(CLI::Range(int64_t{-1}, int64_t{65535}))
      ->capture_default_str();
  cmd.add_option("--metrics-bind", c.metrics_bind, "numeric IPv4 address the metrics endpoint listens on")
      ->capture_default_str();
  cmd.add_flag("--metrics-required", c.metrics_required, "stop (exit 2) when the metrics endpoint cannot start")
      ->default_str(BoolText(c.metrics_required));
  cmd.add_option("--metrics-targets", c.metrics_targets, "Prometheus file_sd JSON of every rank's endpoint (rank 0)");
  cmd.add_option("--metrics-job", c.metrics_job,
                 "job label of the metrics and Pushgateway job (under Slurm: <job name>-<job id>)")
      ->capture_default_str();
  cmd.add_option("--pushgateway", c.pushgateway,
                 "http://HOST:PORT of a Pushgateway: push at epoch ends and every exit");
  cmd.add_option("--push-timeout", c.push_timeout, "seconds a push may delay the job at most")
      ->check(kPositive)
      ->capture_default_str();
  cmd.add_option("--metrics-textfile", c.metrics_textfile, "folder for node_exporter's textfile collector");
  cmd.add_option("--metrics-linger", c.metrics_linger,
                 "seconds a stopping or finished rank whose endpoint has been scraped keeps serving until it is "
                 "scraped once more, so that the failure or the end reaches Prometheus (a failure: within "
                 "--fault-grace; 0: no wait)")
      ->check(kNonNegative)
      ->capture_default_str();
}

// Checkpoints: checkpoints, resuming and requeues.
void AddCheckpointOptions(CLI::App& cmd, TrainConfig& c) {
  cmd.add_option("--checkpoint", c.checkpoint, "checkpoint file to write (and to resume from)")->capture_default_str();
  cmd.add_option("--checkpoint-every", c.checkpoint_every, "also checkpoint every N steps (0: epoch ends only)")
      ->check(kNonNegative)
      ->capture_default_str();
  // A bare --resume means "yes"; CLI11 2.1 fills a missing value with default_str, hence "" here
  // and the fix-up in FinishResumeOption after parsing.
  cmd.add_option("--resume", c.resume,
                 "continue from --checkpoint: a bare --resume or 'yes' (it must exist), 'auto' (when it exists: the "
                 "command line of a job that is requeued) or 'no' (default)")
      ->expected(0, 1)
      ->default_str("");
  cmd.add_option("--preempt-grace", c.preempt_grace,
                 "seconds after SIGTERM (under srun or a direct start) for the ranks to agree on a checkpoint "
                 "before exiting 6")
      ->check(kPositive)
      ->capture_default_str();
  cmd.add_option("--restart-count", c.restart_count,
                 "how many times this job was restarted before this run (slurm/ and k8s/ set it): logged and "
                 "exported as trainguard_restarts")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_option("--restarts-in-place", c.restarts_in_place,
                 "of --restart-count, the restarts inside the allocation or pod, without a requeue (slurm/ and "
                 "k8s/ set it): exported as trainguard_restarts_in_place")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd.add_option("--excluded-nodes", c.excluded_nodes,
                 "the nodes the launcher left out of this run after failures, comma-separated (slurm/ sets it): "
                 "logged and exported as trainguard_excluded_node{node}")
      ->delimiter(',');
}

// Prediction: what predict writes.
void AddPredictionOptions(CLI::App& cmd, TrainConfig& c) {
  cmd.add_option("--predictions", c.predictions, "predict: submission CSV (Id,Category) to write")
      ->capture_default_str();
}

// The subcommands an option serves, by the option's first long name: a subcommand's --help lists
// its options, and a flag given on the command line to a subcommand that does not use it is
// refused. (The --config file and TRAINGUARD_* variables are shared by every subcommand: a value
// there for another subcommand is not an error.)
using Users = std::map<std::string, std::set<std::string>>;

const std::set<std::string> kJobs{"train", "validate", "predict"};  // the MPI subcommands
const std::set<std::string> kTrain{"train"};

struct OptionGroup {
  const char* title;
  void (*add)(CLI::App&, TrainConfig&);
  std::set<std::string> users;                        // of every option of the group, unless
  std::map<std::string, std::set<std::string>> only;  // an option's own users say otherwise
};

const std::vector<OptionGroup>& OptionGroups() {
  static const std::vector<OptionGroup> groups{
      {"Data",
       AddDataOptions,
       kJobs,
       {{"data-dir", {"train", "validate", "predict", "make-folder"}},
        {"train-samples", {"train", "validate", "predict", "make-folder"}},
        {"test-samples", {"train", "validate", "predict", "make-folder"}},
        {"image-size", {"train", "validate", "predict", "shrink-folder"}}}},
      {"Model and training",
       AddTrainingOptions,
       kTrain,
       {{"width", {"train", "predict"}}, {"batch-size", {"train", "predict"}}, {"precision", {"train", "predict"}}}},
      {"Distribution and devices",
       AddDistributionOptions,
       kJobs,
       {{"data-plane", kTrain}, {"store-addr", kTrain}, {"store-port", kTrain}, {"bucket-mb", kTrain}}},
      {"Label checks", AddLabelOptions, {"train", "validate"}, {}},
      {"Faults and diagnosis",
       AddFaultOptions,
       kJobs,
       {{"bundle-dir", kTrain},
        {"diagnose", kTrain},
        {"bad-samples", kTrain},
        {"quarantine", kTrain},
        {"max-quarantined", kTrain},
        {"quarantine-by-restart", kTrain},
        {"host-copy-every", kTrain},
        {"inject-fault", {"train", "diagnose"}}}},
      {"Metrics", AddMetricsOptions, kJobs, {}},
      {"Checkpoints", AddCheckpointOptions, kTrain, {{"checkpoint", {"train", "predict"}}}},
      {"Prediction", AddPredictionOptions, {"predict"}, {}},
  };
  return groups;
}

// Declares every shared option, group by group, each with its TRAINGUARD_<NAME> variable, and
// returns which subcommands use each.
Users AddOptions(CLI::App& cmd, TrainConfig& c) {
  Users users;
  for (const OptionGroup& group : OptionGroups()) {
    const size_t before = cmd.get_options().size();
    group.add(cmd, c);
    const auto options = cmd.get_options();
    for (size_t k = before; k < options.size(); ++k) {
      CLI::Option* opt = options[k];
      const std::string name = opt->get_lnames().front();
      opt->group(group.title);
      opt->envname(EnvNameOf(name));
      // A single-value option given twice is refused by RepeatedOption after parsing, with both
      // values; TakeLast only lets the parse reach that check (CLI11's own Throw names neither).
      // List options (--inject-fault, --plant-label, --excluded-nodes) keep every value.
      if (opt->get_items_expected_max() <= 1) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
      const auto own = group.only.find(name);
      users[name] = own != group.only.end() ? own->second : group.users;
    }
  }
  return users;
}

// The config file's reader: TOML or INI as CLI11 reads it, less the entries of options whose
// TRAINGUARD_* variable is set (not empty), so that the environment beats the config file. CLI11
// applies the config file before the environment and the environment only to options still
// unset; dropping those entries here gives: command line, environment, config file, default.
class EnvironmentFirstConfig : public CLI::ConfigTOML {
 public:
  explicit EnvironmentFirstConfig(const CLI::App& app) : app_(app) {}

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> items = CLI::ConfigTOML::from_config(input);
    items.erase(
        std::remove_if(items.begin(), items.end(), [&](const CLI::ConfigItem& item) { return InEnvironment(item); }),
        items.end());
    return items;
  }

 private:
  // Whether the item is a top-level option's (looked up as CLI11 looks it up) whose variable is set.
  bool InEnvironment(const CLI::ConfigItem& item) const {
    if (!item.parents.empty()) return false;
    const CLI::Option* opt = app_.get_option_no_throw("--" + item.name);
    if (opt == nullptr) opt = app_.get_option_no_throw(item.name);
    if (opt == nullptr || opt->get_envname().empty()) return false;
    const char* value = std::getenv(opt->get_envname().c_str());
    return value != nullptr && *value != '\0';
  }

  const CLI::App& app_;
};

// A single-value option given more than once on the command line: "--checkpoint given twice (a,
// then b): give it once", or "" when none. (The config file and the environment give an option one
// value each, and only when the command line gave none.) A script that must let its user override
// one of its defaults passes that default in the option's TRAINGUARD_* variable instead of as a flag.
std::string RepeatedOption(const CLI::App& app) {
  std::vector<const CLI::Option*> options = app.get_options();
  for (const CLI::App* sub : app.get_subcommands({})) {
    for (const CLI::Option* opt : sub->get_options()) options.push_back(opt);
  }
  for (const CLI::Option* opt : options) {
    if (opt->get_items_expected_max() > 1 || opt->count() < 2 || opt->get_lnames().empty()) continue;
    const std::vector<std::string>& values = opt->results();
    std::string list;
    for (size_t k = 0; k < values.size(); ++k) {
      list += (k == 0 ? "" : k + 1 == values.size() ? ", then " : ", ") + (values[k].empty() ? "''" : values[k]);
    }
    const std::string times = values.size() == 2 ? "twice" : std::to_string(values.size()) + " times";
    return "--" + opt->get_lnames().front() + " given " + times + " (" + list + "): give it once";
  }
  return "";
}

// The shared options that were set, by first long name, each with where its value came from:
// "--name" (the command line), its TRAINGUARD_* variable, or "the --config file".
std::map<std::string, std::string> GivenSettings(const CLI::App& app, int argc, const char* const* argv) {
  std::set<const CLI::Option*> on_command_line;
  for (int k = 1; k < argc && std::strcmp(argv[k], "--") != 0; ++k) {
    const std::string word = argv[k];
    if (word.rfind("--", 0) == 0) on_command_line.insert(app.get_option_no_throw(word.substr(0, word.find('='))));
  }
  std::map<std::string, std::string> given;
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->count() == 0 || opt->get_lnames().empty() || opt->get_envname().empty()) continue;
    const std::string name = opt->get_lnames().front();
    const char* value = std::getenv(opt->get_envname().c_str());
    given[name] = on_command_line.count(opt) > 0       ? "--" + name
                  : value != nullptr && *value != '\0' ? opt->get_envname()
                                                       : "the --config file";
  }
  return given;
}

// Names of TRAINGUARD_* variables that match no option. TRAINGUARD_HOME belongs to the scripts
// (scripts/setup.sh: where the venv and the demo folder live), not to the executable.
std::vector<std::string> UnknownEnvironment(const CLI::App& app) {
  std::set<std::string> known{"TRAINGUARD_HOME"};
  for (const CLI::Option* opt : app.get_options()) {
    if (!opt->get_envname().empty()) known.insert(opt->get_envname());
  }
  std::vector<std::string> unknown;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.rfind("TRAINGUARD_", 0) != 0) continue;
    const std::string name = entry.substr(0, entry.find('='));
    if (known.count(name) == 0) unknown.push_back(name);
  }
  return unknown;
}

// --resume after parsing: a bare --resume is "yes", and the config-file spellings of a flag
// (true/false, 1/0) are accepted; the resolved configuration shows the outcome.
void FinishResumeOption(CLI::App& app, std::string& resume) {
  CLI::Option* opt = app.get_option("--resume");
  if (opt->count() > 0 && resume.empty()) resume = "yes";
  if (resume == "true" || resume == "1") resume = "yes";
  if (resume == "false" || resume == "0") resume = "no";
  if (opt->count() > 0) {
    opt->clear();
    opt->add_result(resume);
  }
  opt->default_str("no");
}

// The lines of CLI11's configuration text that belong to the top-level options (it adds
// subcommand entries such as "diagnose.bundle").
std::string TopLevelLines(const std::string& config_text) {
  std::istringstream all(config_text);
  std::string out;
  for (std::string line; std::getline(all, line);) {
    if (line.find('.') == std::string::npos || line.find('.') > line.find('=')) out += line + "\n";
  }
  return out;
}

// TRAINGUARD_* variables that are set, for error messages ("TRAINGUARD_LR=abc").
std::string SetEnvironment() {
  std::string out;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "TRAINGUARD_", 11) == 0) out += std::string(out.empty() ? "" : ", ") + *e;
  }
  return out;
}

// One option in a subcommand's help: its names, value type and default, its variable, and what it
// does on the next line.
std::string OptionHelp(const CLI::Option& opt) {
  std::string line = " ";
  for (const auto& n : opt.get_snames()) line += " -" + n + ",";
  for (const auto& n : opt.get_lnames()) line += " --" + n + ",";
  line.pop_back();
  if (opt.get_type_size() != 0 && !opt.get_type_name().empty()) line += " " + opt.get_type_name();
  if (!opt.get_default_str().empty()) line += " (default " + opt.get_default_str() + ")";
  if (!opt.get_envname().empty()) line += "  [" + opt.get_envname() + "]";
  return line + "\n      " + opt.get_description() + "\n";
}

// `trainguard SUBCOMMAND --help`: the subcommand's own arguments, then the groups of shared options
// that it uses, each with only the options it uses.
std::string SubcommandHelp(const CLI::App& sub, const CLI::App& app, const Users& users) {
  const std::string name = sub.get_name();
  std::string positionals, own;
  for (const CLI::Option* opt : sub.get_options()) {
    if (opt->get_positional()) {
      positionals += " " + opt->get_name();
    } else if (opt->get_lnames().empty() || opt->get_lnames().front() != "help") {
      own += OptionHelp(*opt);
    }
  }
  std::string out = "trainguard " + name + ": " + sub.get_description() + "\n\nUsage: trainguard " + name +
                    positionals +
                    " [OPTIONS]\n\nEvery option below can also be given in the --config file (key = value, " +
                    "the long name\nwithout --) or in its TRAINGUARD_* variable; the command line wins, then the "
                    "variable,\nthen the file.\n";
  if (!own.empty()) out += "\n" + std::string(name) + ":\n" + own;
  for (const OptionGroup& group : OptionGroups()) {
    std::string lines;
    for (const CLI::Option* opt : app.get_options()) {
      if (opt->get_group() != group.title) continue;
      const auto it = users.find(opt->get_lnames().front());
      if (it != users.end() && it->second.count(name) > 0) lines += OptionHelp(*opt);
    }
    if (!lines.empty()) out += "\n" + std::string(group.title) + ":\n" + lines;
  }
  out += "\n  --config FILE  [TRAINGUARD_CONFIG]\n      config file (TOML or INI) of key = value lines\n";
  return out;
}

// `trainguard --help`: the subcommands, and where each one's options are listed.
std::string TopHelp(const CLI::App& app) {
  std::string out = app.get_description() + "\n\nUsage: trainguard SUBCOMMAND [OPTIONS]\n\nSubcommands:\n";
  for (const CLI::App* sub : app.get_subcommands({})) {
    std::string name = sub->get_name();
    name.resize(std::max<size_t>(name.size(), 14), ' ');
    out += "  " + name + sub->get_description() + "\n";
  }
  return out +
         "\nOptions of a subcommand, by group, with defaults and variables: trainguard SUBCOMMAND --help\n"
         "  --version      trainguard's version and commit, and the versions of the libraries it uses\n"
         "  --config FILE  key = value lines (the long option names without --) for any subcommand\n"
         "A bug report: paste what `trainguard env` prints.\n";
}

// `trainguard completion`: a bash completion script for the subcommands and, after one, the long
// options that subcommand takes (its own and the shared ones it uses).
std::string BashCompletion(const CLI::App& app, const Users& users) {
  std::string names, cases;
  for (const CLI::App* sub : app.get_subcommands({})) {
    const std::string name = sub->get_name();
    names += (names.empty() ? "" : " ") + name;
    std::string words = "--help --config";
    for (const CLI::Option* opt : sub->get_options()) {
      for (const auto& l : opt->get_lnames()) words += l == "help" ? "" : " --" + l;
    }
    for (const CLI::Option* opt : app.get_options()) {
      const auto it = opt->get_lnames().empty() ? users.end() : users.find(opt->get_lnames().front());
      if (it == users.end() || it->second.count(name) == 0) continue;
      for (const auto& l : opt->get_lnames()) words += " --" + l;
    }
    cases += "    " + name + ") words=\"" + words + "\" ;;\n";
  }
  return "# bash completion for trainguard, generated by `trainguard completion`; load it with\n"
         "#   source <(trainguard completion)\n"
         "_trainguard() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} subs=\" " +
         names +
         " \" sub='' words w\n"
         "  for w in \"${COMP_WORDS[@]:1:COMP_CWORD-1}\"; do\n"
         "    case $subs in *\" $w \"*) sub=$w; break ;; esac\n"
         "  done\n"
         "  case $sub in\n" +
         cases + "    *) words=\"" + names + " --help --version\" ;;\n  esac\n" +
         "  mapfile -t COMPREPLY < <(compgen -W \"$words\" -- \"$cur\")\n"
         "}\n"
         "complete -o default -F _trainguard trainguard build/launcher/trainguard ./build/launcher/trainguard\n";
}

// The subcommand named in argv (the first word that names one), or null.
const CLI::App* NamedSubcommand(const CLI::App& app, int argc, const char* const* argv) {
  for (int k = 1; k < argc; ++k) {
    for (const CLI::App* sub : app.get_subcommands({})) {
      if (sub->get_name() == argv[k]) return sub;
    }
  }
  return nullptr;
}

// A shared option given on the command line to a subcommand that does not use it: "" when none.
std::string ForeignFlag(const CLI::App& app, const std::string& subcommand, const Users& users, int argc,
                        const char* const* argv) {
  for (int k = 1; k < argc; ++k) {
    const std::string word = argv[k];
    if (word == "--") break;
    if (word.rfind("--", 0) != 0) continue;
    const std::string flag = word.substr(0, word.find('='));
    const CLI::Option* opt = app.get_option_no_throw(flag);
    if (opt == nullptr) continue;  // a subcommand's own option, --config, --help, or a typo CLI11 names
    const auto it = users.find(opt->get_lnames().front());
    if (it == users.end() || it->second.count(subcommand) > 0) continue;
    std::string where;
    for (const auto& user : it->second) where += (where.empty() ? "" : ", ") + user;
    return flag + " is not an option of " + subcommand + " (it is one of " + where + "); see trainguard " + subcommand +
           " --help";
  }
  return "";
}

}  // namespace

std::string SlurmMetricsJob(const std::string& job_name, const std::string& job_id) {
  if (job_id.empty()) return "";
  std::string job = (job_name.empty() ? "trainguard" : job_name) + "-" + job_id;
  for (char& c : job) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') c = '_';
  }
  return job;
}

Command ParseCommandLine(int argc, const char* const* argv) {
  Command command;
  CLI::App app{"trainguard: data-parallel CNN training that does not die silently"};
  app.require_subcommand(1);
  // Options live on the top level, shared by every subcommand (fallthrough lets them follow the
  // subcommand's name), so one config file of key = value lines serves them all.
  app.set_config("--config", "", "config file (TOML or INI) of key = value lines, keys as the long flags");
  app.get_config_ptr()->envname("TRAINGUARD_CONFIG");
  app.allow_config_extras(CLI::config_extras_mode::error);  // an unknown key is a typo, not a no-op
  app.config_formatter(std::make_shared<EnvironmentFirstConfig>(app));
  const Users users = AddOptions(app, command.train);
  // Under Slurm each job has its own metrics identity (Pushgateway group, textfile names, the job
  // label) unless --metrics-job is set: two jobs of one cluster never replace each other's.
  const char* slurm_id = std::getenv("SLURM_JOB_ID");
  const char* slurm_name = std::getenv("SLURM_JOB_NAME");
  const std::string slurm_job = SlurmMetricsJob(slurm_name ? slurm_name : "", slurm_id ? slurm_id : "");
  if (!slurm_job.empty()) app.get_option("--metrics-job")->default_val(slurm_job);
  CLI::App* train = app.add_subcommand("train", "train the HW3 classifier");
  CLI::App* validate = app.add_subcommand("validate", "only validate the labels of every rank's shard, then exit");
  CLI::App* diagnose = app.add_subcommand("diagnose", "re-run a failed step from its repro bundle and name the cause");
  diagnose->add_option("bundle", command.bundle, "bundle folder written by the failing rank")->required();
  diagnose
      ->add_option("--time-budget", command.diagnosis_budget,
                   "seconds the diagnosis has (the failing rank gives --fault-grace minus 5 s); re-runs that would not "
                   "fit are skipped and the report says so (default: no limit)")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            char* end = nullptr;
            const double seconds = std::strtod(value.c_str(), &end);
            return *end == '\0' && seconds > 0 ? "" : "'" + value + "' is not a positive number of seconds";
          },
          "SECONDS > 0"));
  CLI::App* predict = app.add_subcommand(
      "predict", "predict the classes of the --data-dir images with the model of --checkpoint; write --predictions");
  CLI::App* make_folder = app.add_subcommand(
      "make-folder", "write a food-11-style JPEG folder (training/, validation/, test/) from Fashion-MNIST");
  make_folder->add_option("out", command.bundle, "folder to create")->required();
  CLI::App* completion =
      app.add_subcommand("completion", "print a bash completion script: source <(trainguard completion)");
  CLI::App* env = app.add_subcommand("env", "print what a bug report needs: versions, host, CPUs, memory, GPUs, ranks");
  CLI::App* shrink_folder = app.add_subcommand(
      "shrink-folder",
      "copy a JPEG folder with every image's shorter side at --side, so that decoding keeps up with a fast GPU");
  shrink_folder->add_option("source", command.source, "JPEG folder to read (with its subfolders)")->required();
  shrink_folder->add_option("out", command.bundle, "folder to write (a rerun finishes an interrupted one)")->required();
  command.shrink.short_side = 0;
  shrink_folder
      ->add_option("--side", command.shrink.short_side,
                   "shorter side of a shrunk image (0: 5/4 x --image-size, 160 for 128)")
      ->check(CLI::Range(0, 16384))
      ->capture_default_str();
  shrink_folder->add_option("--quality", command.shrink.quality, "JPEG quality of the shrunk images")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  for (CLI::App* sub : {train, validate, diagnose, predict, make_folder, shrink_folder, env, completion}) {
    sub->fallthrough();
    for (CLI::Option* opt : sub->get_options()) {  // as for the shared options: RepeatedOption names a repeat
      if (!opt->get_positional() && opt->get_items_expected_max() <= 1) {
        opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
      }
    }
  }
  for (int k = 1; k < argc; ++k) {
    if (std::strcmp(argv[k], "--version") == 0) {
      command.kind = Command::Kind::kVersion;
      return command;
    }
  }

  auto usage_error = [&](const std::string& message) {
    command.kind = Command::Kind::kExit;
    command.exit_code = 2;
    command.message = "trainguard: " + message + "\n";
    return command;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    const CLI::App* sub = NamedSubcommand(app, argc, argv);
    command.message = sub != nullptr ? SubcommandHelp(*sub, app, users) : TopHelp(app);
    return command;
  } catch (const CLI::ConfigError& e) {
    return usage_error(std::string(e.what()) +
                       " in the --config file: keys are the long flag names without -- "
                       "(see trainguard --help)");
  } catch (const CLI::ParseError& e) {
    const std::string env = SetEnvironment();
    return usage_error(std::string(e.what()) + (env.empty() ? "" : " (values from the environment: " + env + ")") +
                       "; see trainguard --help");
  }
  const std::string repeated = RepeatedOption(app);
  if (!repeated.empty()) return usage_error(repeated);
  for (const auto& name : UnknownEnvironment(app)) {
    return usage_error(name + " is set but is not a trainguard setting; unset it or fix its name (see --help)");
  }
  for (const CLI::App* sub : app.get_subcommands()) {
    const std::string foreign = ForeignFlag(app, sub->get_name(), users, argc, argv);
    if (!foreign.empty()) return usage_error(foreign);
  }
  if (app.got_subcommand(completion)) {
    command.kind = Command::Kind::kExit;
    command.message = BashCompletion(app, users);
    return command;
  }
  FinishResumeOption(app, command.train.resume);
  try {
    ValidateTrainConfig(command.train);
  } catch (const ConfigError& e) {
    return usage_error(e.what());
  }
  command.kind = app.got_subcommand(validate)        ? Command::Kind::kValidate
                 : app.got_subcommand(diagnose)      ? Command::Kind::kDiagnose
                 : app.got_subcommand(make_folder)   ? Command::Kind::kMakeFolder
                 : app.got_subcommand(shrink_folder) ? Command::Kind::kShrinkFolder
                 : app.got_subcommand(predict)       ? Command::Kind::kPredict
                 : app.got_subcommand(env)           ? Command::Kind::kEnv
                                                     : Command::Kind::kTrain;
  command.resolved = TopLevelLines(app.config_to_str(true, false));
  command.resolved_set = TopLevelLines(app.config_to_str(false, false));
  command.given = GivenSettings(app, argc, argv);
  return command;
}

}  // namespace trainguard
