// Metrics: the trainguard_* families on one prometheus::Registry, the observer methods that set
// them, and the outputs (endpoint, push, textfile, targets file). See metrics.h.
#include "diagnostics/metrics/metrics.h"

#include <arpa/inet.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <mutex>

#include "diagnostics/metrics/endpoint.h"
#include "diagnostics/metrics/push.h"
#include "trainer/core/atomic_file.h"

namespace trainguard {

const char* const kFailureKinds[11] = {"bad_label",  "device_assert", "non_finite", "stall",         "peer",     "data",
                                       "checkpoint", "comm",          "internal",   "out_of_memory", "gpu_fault"};
const char* const kPhases[7] = {"starting",      "validating", "training", "evaluating",
                                "checkpointing", "stopping",   "finished"};

namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

// Step durations from 1 ms to 60 s.
const Histogram::BucketBoundaries kStepBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1,      2.5,   5,    10,    30,   60};

std::string ThisHost() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "unknown";
  return name;
}

// Throws MetricsError naming the field when an option is bad.
void Validate(const MetricsOptions& o) {
  auto fail = [](const std::string& field, const std::string& why) {
    throw MetricsError("metrics option " + field + ": " + why);
  };
  if (o.job.empty() || o.job.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
                           std::string::npos) {
    fail("job", "'" + o.job + "' must be non-empty letters, digits, '_', '.' or '-' (it goes into URLs)");
  }
  if (o.rank < 0 || o.local_rank < 0 || o.world_size < 1) fail("rank", "negative rank or world size below 1");
  if (o.port_base < -1 || o.port_base > 65535) {
    fail("port_base", std::to_string(o.port_base) + " is not -1 (off), 0 (a free port) or a port");
  }
  in_addr addr{};
  if (::inet_pton(AF_INET, o.bind.c_str(), &addr) != 1) {
    fail("bind", "'" + o.bind + "' is not a numeric IPv4 address (0.0.0.0 for every interface)");
  }
  if (!o.pushgateway_url.empty()) {
    GatewayAddress gateway;
    const std::string why = ParsePushgatewayUrl(o.pushgateway_url, &gateway);
    if (!why.empty()) fail("pushgateway_url", "'" + o.pushgateway_url + "': " + why);
  }
  if (!(o.push_timeout_s > 0)) fail("push_timeout_s", "must be above 0");
  if (o.max_class_series < 0) fail("max_class_series", "must not be negative");
}

// Sets the series of `family` with `labels` to `value`, or removes it when there is no value.
template <typename T>
void SetOrRemove(Family<Gauge>& family, const Labels& labels, const std::optional<T>& value) {
  if (value) {
    family.Add(labels).Set(static_cast<double>(*value));
  } else if (family.Has(labels)) {
    family.Remove(&family.Add(labels));
  }
}

double UnixNow() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

}  // namespace

class Metrics::Impl {
 public:
  explicit Impl(const MetricsOptions& options) : options(options), registry(std::make_shared<prometheus::Registry>()) {
    if (this->options.host.empty()) this->options.host = ThisHost();
    constant = {{"job", this->options.job},
                {"rank", std::to_string(this->options.rank)},
                {"local_rank", std::to_string(this->options.local_rank)},
                {"host", this->options.host}};
  }
  ~Impl() { StopEndpoint(endpoint, options.bind); }

  Family<Counter>& CounterFamily(const std::string& name, const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Labels(constant).Register(*registry);
  }
  Family<Gauge>& GaugeFamily(const std::string& name, const std::string& help) {
    return prometheus::BuildGauge().Name(name).Help(help).Labels(constant).Register(*registry);
  }

  // Counts the serves of /metrics: Collect() runs once per scrape and adds no series. It is
  // collected before the registry, so a serve counted after a value was set carries the value
  // (LingerForScrape waits for such a serve).
  struct ScrapeCounter final : prometheus::Collectable {
    std::vector<prometheus::MetricFamily> Collect() const override {
      ++count;
      return {};
    }
    mutable std::atomic<int64_t> count{0};
  };

  MetricsOptions options;
  std::shared_ptr<prometheus::Registry> registry;
  std::shared_ptr<ScrapeCounter> scrape_counter = std::make_shared<ScrapeCounter>();
  std::atomic<int64_t> probe_serves{0};  // the serves of the endpoint's start probe, not a scraper's
  Labels constant;

  // Counters exist from the start (at 0); gauges of "the last value" appear with their first value.
  Family<Gauge>* run_info = nullptr;
  Counter* steps = nullptr;
  Counter* samples = nullptr;
  Family<Gauge>* epoch = nullptr;
  Family<Gauge>* loss = nullptr;
  Family<Gauge>* train_accuracy = nullptr;
  Family<Gauge>* eval_accuracy = nullptr;
  Histogram* step_duration = nullptr;
  Counter* loader_wait = nullptr;
  Counter* allreduce_wait = nullptr;
  Counter* step_compute = nullptr;
  Family<Gauge>* step_compute_ratio = nullptr;
  Family<Gauge>* peer_silent = nullptr;
  Family<Gauge>* samples_per_second = nullptr;
  Counter* checkpoints = nullptr;
  Family<Gauge>* checkpoint_duration = nullptr;
  Family<Gauge>* checkpoint_bytes = nullptr;
  Family<Gauge>* labels = nullptr;
  Family<Gauge>* labels_per_class = nullptr;
  Counter* ignored_targets = nullptr;
  Counter* unreadable_images = nullptr;
  Family<Counter>* failures = nullptr;
  Family<Gauge>* exit_code = nullptr;
  Family<Gauge>* phase = nullptr;
  Family<Gauge>* last_progress = nullptr;
  Family<Gauge>* progress_deadline = nullptr;
  Family<Gauge>* wait_deadline = nullptr;
  Counter* preemptions = nullptr;
  Counter* quarantined = nullptr;
  Family<Gauge>* finished = nullptr;
  Gauge* restarts = nullptr;
  Gauge* restarts_in_place = nullptr;
  Family<Gauge>* excluded_node = nullptr;
  Gauge* lost_training = nullptr;
  Family<Gauge>* last_success = nullptr;
  Family<Gauge>* gpu_allocated = nullptr;
  Family<Gauge>* gpu_reserved = nullptr;
  // GPU health (NVML), each series labelled gpu (a PCI bus id).
  Family<Gauge>* gpu_utilization = nullptr;
  Family<Gauge>* gpu_memory_used = nullptr;
  Family<Gauge>* gpu_memory_total = nullptr;
  Family<Gauge>* gpu_temperature = nullptr;
  Family<Gauge>* gpu_power = nullptr;
  Family<Gauge>* gpu_throttled = nullptr;
  Family<Gauge>* gpu_ecc_errors = nullptr;
  Family<Counter>* gpu_xid_events = nullptr;
  Family<Counter>* gpu_double_bit_ecc_events = nullptr;

  std::mutex mutex;              // guards run_info_series, endpoint
  std::mutex gpu_health;         // one SetGpuHealth at a time: it adds and removes series
  std::mutex writing;            // one writer of the textfile at a time: its temporary name is fixed
  bool textfile_warned = false;  // a failed write was reported; said again only after a success
  Gauge* run_info_series = nullptr;
  Endpoint endpoint;
  bool started = false;
  std::atomic<int> port{0};
};

Metrics::Metrics(const MetricsOptions& options) {
  Validate(options);
  impl_ = std::make_unique<Impl>(options);
  Impl& m = *impl_;
  m.run_info = &m.GaugeFamily("trainguard_run_info", "What the run is; always 1.");
  m.steps = &m.CounterFamily("trainguard_steps_total", "Successful training steps.").Add({});
  m.samples = &m.CounterFamily("trainguard_samples_total", "Samples trained on.").Add({});
  m.epoch = &m.GaugeFamily("trainguard_epoch", "The last epoch that ended.");
  m.loss = &m.GaugeFamily("trainguard_loss", "Training loss: the last step's, or the mean of the epoch that ended.");
  m.train_accuracy = &m.GaugeFamily("trainguard_train_accuracy", "Training accuracy of the last epoch (0 to 1).");
  m.eval_accuracy = &m.GaugeFamily("trainguard_eval_accuracy", "Evaluation accuracy after the last epoch (0 to 1).");
  m.step_duration = &prometheus::BuildHistogram()
                         .Name("trainguard_step_duration_seconds")
                         .Help("Duration of successful training steps.")
                         .Labels(m.constant)
                         .Register(*m.registry)
                         .Add({}, kStepBuckets);
  m.loader_wait = &m.CounterFamily("trainguard_loader_wait_seconds_total", "Time steps waited for batches.").Add({});
  m.allreduce_wait =
      &m.CounterFamily(
            "trainguard_allreduce_wait_seconds_total",
            "Time steps waited for the other ranks: the agreement after the forward pass and the gradient all-reduce.")
           .Add({});
  m.step_compute = &m.CounterFamily("trainguard_step_compute_seconds_total",
                                    "Time steps computed: their time less the waits for batches and the all-reduce.")
                        .Add({});
  m.step_compute_ratio =
      &m.GaugeFamily("trainguard_step_compute_ratio",
                     "This rank's own time per step (compute and loader wait, not the wait for the other ranks) over "
                     "the other ranks' median, in the last window of steps (about 5 s, at most 20 steps).");
  m.peer_silent = &m.GaugeFamily("trainguard_peer_silent",
                                 "Ranks this rank could not hear when it stopped (1 each): lost, frozen or cut off.");
  m.samples_per_second = &m.GaugeFamily("trainguard_samples_per_second", "Training throughput of the last epoch.");
  m.checkpoints = &m.CounterFamily("trainguard_checkpoints_total", "Checkpoints written.").Add({});
  m.checkpoint_duration =
      &m.GaugeFamily("trainguard_checkpoint_duration_seconds", "Time the last checkpoint took to write.");
  m.checkpoint_bytes = &m.GaugeFamily("trainguard_checkpoint_bytes", "Size of the last checkpoint.");
  m.labels = &m.GaugeFamily(
      "trainguard_labels", "Labels of the training set (all ranks) by label validation's verdict; exported by rank 0.");
  m.labels_per_class = &m.GaugeFamily("trainguard_labels_per_class",
                                      "Valid labels of the training set (all ranks) per class; exported by rank 0.");
  m.ignored_targets =
      &m.CounterFamily("trainguard_ignored_targets_total", "Targets equal to the ignore index, skipped by the loss.")
           .Add({});
  m.unreadable_images =
      &m.CounterFamily("trainguard_unreadable_images_total", "Images that could not be decoded.").Add({});
  m.failures = &m.CounterFamily("trainguard_failures_total", "Failures that stopped the run, by kind.");
  for (const char* kind : kFailureKinds) m.failures->Add({{"kind", kind}});  // at 0, so increase() sees the first
  m.exit_code = &m.GaugeFamily("trainguard_exit_code",
                               "The exit code this rank ends with (docs/exit-codes.md); absent while it runs.");
  m.phase = &m.GaugeFamily("trainguard_phase", "1 for the phase this rank is in, 0 for the others.");
  for (const char* phase : kPhases) m.phase->Add({{"phase", phase}}).Set(std::string(phase) == "starting" ? 1 : 0);
  m.last_progress = &m.GaugeFamily(
      "trainguard_last_progress_timestamp_seconds",
      "Unix time this rank last made progress: a step, an evaluation batch, a checkpoint or a new phase.");
  m.last_progress->Add({}).Set(UnixNow());
  m.progress_deadline = &m.GaugeFamily("trainguard_progress_deadline_seconds",
                                       "How long this rank may go without progress before trainguard itself ends "
                                       "the run (--step-timeout plus --fault-grace).");
  m.wait_deadline = &m.GaugeFamily("trainguard_wait_deadline_seconds",
                                   "How long a wait in this phase may last before this rank calls it a stall: "
                                   "learned from the run's own durations of the phase, at most --step-timeout.");
  m.preemptions = &m.CounterFamily("trainguard_preemptions_total",
                                   "Stops on request (SIGUSR1, SIGTERM) after an agreed checkpoint: exit 12.")
                       .Add({});
  m.finished = &m.GaugeFamily("trainguard_finished_timestamp_seconds",
                              "Unix time the run ended cleanly (absent while it trains or after a failure).");
  m.quarantined =
      &m.CounterFamily("trainguard_quarantined_samples_total",
                       "Samples set aside by --bad-samples quarantine, the job's count on rank 0 (0 elsewhere).")
           .Add({});
  m.last_success =
      &m.GaugeFamily("trainguard_last_success_timestamp_seconds", "Unix time of the last successful step.");
  m.restarts = &m.GaugeFamily("trainguard_restarts", "Times the launcher restarted this job before this run.").Add({});
  m.restarts_in_place = &m.GaugeFamily("trainguard_restarts_in_place",
                                       "Of trainguard_restarts, those inside the allocation or pod, without a requeue.")
                             .Add({});
  m.excluded_node =
      &m.GaugeFamily("trainguard_excluded_node", "Nodes the launcher left out of this run after failures (1 each).");
  m.lost_training = &m.GaugeFamily("trainguard_lost_training_seconds",
                                   "At a failure: training time since the last checkpoint, to be redone on resume.")
                         .Add({});
  m.gpu_allocated = &m.GaugeFamily("trainguard_gpu_memory_allocated_bytes", "GPU memory held by tensors.");
  m.gpu_reserved = &m.GaugeFamily("trainguard_gpu_memory_reserved_bytes", "GPU memory held by the caching allocator.");
  m.gpu_utilization = &m.GaugeFamily("trainguard_gpu_utilization_ratio",
                                     "Share of NVML's last sample period in which a kernel ran on the GPU (0 to 1).");
  m.gpu_memory_used =
      &m.GaugeFamily("trainguard_gpu_memory_used_bytes", "GPU memory in use by every process, as NVML reports it.");
  m.gpu_memory_total = &m.GaugeFamily("trainguard_gpu_memory_total_bytes", "GPU memory in all, as NVML reports it.");
  m.gpu_temperature = &m.GaugeFamily("trainguard_gpu_temperature_celsius", "Temperature of the GPU die.");
  m.gpu_power = &m.GaugeFamily("trainguard_gpu_power_watts", "Power the GPU board draws.");
  m.gpu_throttled = &m.GaugeFamily("trainguard_gpu_throttled",
                                   "1 while NVML reports the GPU's clocks held back for this reason, else 0.");
  m.gpu_ecc_errors = &m.GaugeFamily("trainguard_gpu_ecc_errors",
                                    "ECC errors of GPU memory since the driver loaded (NVML's volatile count).");
  m.gpu_xid_events = &m.CounterFamily("trainguard_gpu_xid_events_total",
                                      "Xid critical error events of the GPU (see NVIDIA's Xid catalog), by Xid.");
  m.gpu_double_bit_ecc_events = &m.CounterFamily("trainguard_gpu_double_bit_ecc_events_total",
                                                 "Double-bit (uncorrectable) ECC error events of the GPU.");
}

Metrics::~Metrics() = default;

void Metrics::SetRunInfo(const RunInfo& info) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mutex);
  if (m.run_info_series != nullptr) m.run_info->Remove(m.run_info_series);
  m.run_info_series = &m.run_info->Add({{"version", info.version},
                                        {"world_size", std::to_string(m.options.world_size)},
                                        {"data_plane", info.data_plane},
                                        {"device", info.device},
                                        {"precision", info.precision}});
  m.run_info_series->Set(1);
}

void Metrics::OnStep(double seconds, int64_t samples, double loss, double loader_wait_s, double allreduce_wait_s,
                     int64_t ignored_targets) {
  Impl& m = *impl_;
  m.steps->Increment();
  m.samples->Increment(static_cast<double>(samples));
  m.loss->Add({}).Set(loss);
  m.step_duration->Observe(seconds);
  m.loader_wait->Increment(loader_wait_s);
  m.allreduce_wait->Increment(allreduce_wait_s);
  m.ignored_targets->Increment(static_cast<double>(ignored_targets));
  const double now = UnixNow();
  m.last_success->Add({}).Set(now);
  m.last_progress->Add({}).Set(now);
}

void Metrics::SetPhase(const std::string& phase) {
  Impl& m = *impl_;
  for (const char* p : kPhases) m.phase->Add({{"phase", p}}).Set(phase == p ? 1 : 0);
  m.last_progress->Add({}).Set(UnixNow());
}

void Metrics::OnProgress() { impl_->last_progress->Add({}).Set(UnixNow()); }

void Metrics::SetProgressDeadline(double seconds) { impl_->progress_deadline->Add({}).Set(seconds); }

void Metrics::SetWaitDeadline(const std::string& phase, double seconds) {
  impl_->wait_deadline->Add({{"phase", phase}}).Set(seconds);
}

void Metrics::OnEpochEnd(int64_t epoch, double mean_loss, std::optional<double> train_accuracy,
                         std::optional<double> eval_accuracy, double samples_per_second) {
  Impl& m = *impl_;
  m.epoch->Add({}).Set(static_cast<double>(epoch));
  m.loss->Add({}).Set(mean_loss);
  if (train_accuracy) m.train_accuracy->Add({}).Set(*train_accuracy);
  if (eval_accuracy) m.eval_accuracy->Add({}).Set(*eval_accuracy);
  m.samples_per_second->Add({}).Set(samples_per_second);
}

void Metrics::OnCheckpoint(double seconds, int64_t bytes) {
  Impl& m = *impl_;
  m.checkpoints->Increment();
  m.checkpoint_duration->Add({}).Set(seconds);
  m.checkpoint_bytes->Add({}).Set(static_cast<double>(bytes));
  m.last_progress->Add({}).Set(UnixNow());
}

void Metrics::SetLabelCounts(const LabelCounts& counts, const std::vector<int64_t>& per_class) {
  Impl& m = *impl_;
  const std::pair<const char*, int64_t> kinds[] = {{"valid", counts.valid},
                                                   {"ignored", counts.ignored},
                                                   {"negative", counts.negative},
                                                   {"too_large", counts.too_large},
                                                   {"unparsable", counts.unparsable}};
  for (const auto& [kind, count] : kinds) m.labels->Add({{"kind", kind}}).Set(static_cast<double>(count));
  const size_t shown = std::min(per_class.size(), static_cast<size_t>(m.options.max_class_series));
  for (size_t c = 0; c < shown; ++c) {
    m.labels_per_class->Add({{"class", std::to_string(c)}}).Set(static_cast<double>(per_class[c]));
  }
}

void Metrics::AddStepCompute(double seconds) { impl_->step_compute->Increment(seconds); }

void Metrics::SetStepComputeRatio(double ratio) { impl_->step_compute_ratio->Add({}).Set(ratio); }

void Metrics::SetSilentPeers(const std::map<int, std::string>& peers) {
  for (const auto& [rank, host] : peers) {
    impl_->peer_silent->Add({{"peer_rank", std::to_string(rank)}, {"peer_host", host}}).Set(1);
  }
}

void Metrics::AddUnreadableImages(int64_t count) { impl_->unreadable_images->Increment(static_cast<double>(count)); }

void Metrics::OnFailure(const std::string& kind, int exit_code) {
  const bool known = std::find(std::begin(kFailureKinds), std::end(kFailureKinds), kind) != std::end(kFailureKinds);
  impl_->failures->Add({{"kind", known ? kind : "internal"}}).Increment();
  SetExitCode(exit_code);
}

void Metrics::SetExitCode(int exit_code) {
  impl_->exit_code->Add({}).Set(exit_code);
  SetPhase(exit_code == 0 ? "finished" : "stopping");
}

void Metrics::OnPreemption() { impl_->preemptions->Increment(); }

void Metrics::OnFinished() {
  impl_->finished->Add({}).Set(UnixNow());
  SetExitCode(0);
}

void Metrics::AddQuarantinedSamples(int64_t count) { impl_->quarantined->Increment(static_cast<double>(count)); }

void Metrics::SetRestarts(int64_t restarts, int64_t in_place, const std::vector<std::string>& excluded_nodes) {
  impl_->restarts->Set(static_cast<double>(restarts));
  impl_->restarts_in_place->Set(static_cast<double>(in_place));
  for (const std::string& node : excluded_nodes) impl_->excluded_node->Add({{"node", node}}).Set(1);
}

void Metrics::SetLostTrainingSeconds(double seconds) { impl_->lost_training->Set(seconds); }

void Metrics::SetGpuMemory(int64_t allocated_bytes, int64_t reserved_bytes) {
  impl_->gpu_allocated->Add({}).Set(static_cast<double>(allocated_bytes));
  impl_->gpu_reserved->Add({}).Set(static_cast<double>(reserved_bytes));
}

void Metrics::SetGpuHealth(const GpuHealth& health) {
  Impl& m = *impl_;
  const Labels gpu = {{"gpu", health.bus_id}};
  std::lock_guard<std::mutex> lock(m.gpu_health);
  SetOrRemove(*m.gpu_utilization, gpu, health.utilization_ratio);
  SetOrRemove(*m.gpu_memory_used, gpu, health.memory_used_bytes);
  SetOrRemove(*m.gpu_memory_total, gpu, health.memory_total_bytes);
  SetOrRemove(*m.gpu_temperature, gpu, health.temperature_celsius);
  SetOrRemove(*m.gpu_power, gpu, health.power_watts);
  for (const ThrottleReason& reason : kThrottleReasons) {
    std::optional<int> throttled;
    if (health.throttle_reasons) throttled = (*health.throttle_reasons & reason.bit) != 0 ? 1 : 0;
    SetOrRemove(*m.gpu_throttled, {{"gpu", health.bus_id}, {"reason", reason.name}}, throttled);
  }
  SetOrRemove(*m.gpu_ecc_errors, {{"gpu", health.bus_id}, {"type", "corrected"}}, health.ecc_corrected);
  SetOrRemove(*m.gpu_ecc_errors, {{"gpu", health.bus_id}, {"type", "uncorrected"}}, health.ecc_uncorrected);
}

void Metrics::OnGpuEvent(const GpuEvent& event) {
  Impl& m = *impl_;
  if (event.kind == GpuEvent::Kind::kXid) {
    m.gpu_xid_events->Add({{"gpu", event.bus_id}, {"xid", std::to_string(event.xid)}}).Increment();
  } else {
    m.gpu_double_bit_ecc_events->Add({{"gpu", event.bus_id}}).Increment();
  }
}

std::string Metrics::Start() {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mutex);
  if (m.started || m.options.port_base < 0) return "";
  m.started = true;
  const int port = m.options.port_base == 0 ? 0 : m.options.port_base + m.options.local_rank;
  if (port > 65535) {
    const std::string why = "metrics port " + std::to_string(m.options.port_base) + " + local rank " +
                            std::to_string(m.options.local_rank) + " is above 65535; lower the port base";
    if (m.options.required) throw MetricsError(why);
    return why;
  }
  m.endpoint = StartEndpoint(m.options.bind, port, {m.scrape_counter, m.registry});
  m.probe_serves = m.scrape_counter->count.load();
  if (!m.endpoint.error.empty()) {
    if (m.options.required) throw MetricsError(m.endpoint.error + " (metrics endpoint required)");
    return m.endpoint.error +
           "; training goes on without a metrics endpoint (choose a free port base, or 0 for any free port)";
  }
  m.port = m.endpoint.port;
  return "";
}

int64_t Metrics::scrapes() const { return impl_->scrape_counter->count.load() - impl_->probe_serves; }

int Metrics::port() const { return impl_->port; }

Target Metrics::SelfTarget() const {
  const MetricsOptions& o = impl_->options;
  return Target{o.bind == "0.0.0.0" ? o.host : o.bind, port(), o.rank};
}

std::string Metrics::WriteTargetsFile(const std::vector<Target>& targets) const {
  if (impl_->options.targets_file.empty()) return "";
  return WriteFileSd(impl_->options.targets_file, impl_->options.job, targets);
}

std::string Metrics::Push() const {
  const MetricsOptions& o = impl_->options;
  if (o.pushgateway_url.empty()) return "";
  return PushToGateway(impl_->registry, o.pushgateway_url, o.job, o.rank, o.push_timeout_s);
}

std::string Metrics::WriteTextfile() const {
  const MetricsOptions& o = impl_->options;
  if (o.textfile_dir.empty()) return "";
  const std::string path = o.textfile_dir + "/trainguard_" + o.job + "_rank" + std::to_string(o.rank) + ".prom";
  std::lock_guard<std::mutex> lock(impl_->writing);
  try {
    WriteFileAtomically(path, Text());
  } catch (const std::exception& e) {
    if (impl_->textfile_warned) return "";
    impl_->textfile_warned = true;
    return std::string("metrics textfile not written: ") + e.what() + " (said once, until a write succeeds)";
  }
  impl_->textfile_warned = false;
  return "";
}

std::string Metrics::CheckTextfile() {
  const std::string& dir = impl_->options.textfile_dir;
  if (dir.empty()) return "";
  std::error_code error;
  if (std::filesystem::is_directory(dir, error) && ::access(dir.c_str(), W_OK | X_OK) == 0) return "";
  const std::string why = "--metrics-textfile " + dir +
                          " is not a folder this process can write: create it (node_exporter's textfile collector "
                          "reads it) or drop the flag";
  {
    std::lock_guard<std::mutex> lock(impl_->writing);
    impl_->textfile_warned = true;  // the writes' own failures (the exit's flush too) would only repeat it
  }
  if (impl_->options.required) throw MetricsError(why);
  return why + "; this rank writes no textfile";
}

std::string Metrics::Text() const { return prometheus::TextSerializer().Serialize(impl_->registry->Collect()); }

const MetricsOptions& Metrics::options() const { return impl_->options; }

}  // namespace trainguard
