// The training loop (see train.h).
#include "trainer/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <sstream>

#include "trainer/core/errors.h"
#include "trainer/core/host_addresses.h"
#include "trainer/core/log.h"
#include "trainer/core/sharding.h"
#include "trainer/data/prefetcher.h"
#include "trainer/evaluate.h"
#include "trainer/fused_adam.h"
#include "trainer/loss.h"
#include "trainer/model/bn_relu_pool.h"
#include "trainer/precision.h"
#include "trainer/step_errors.h"

namespace trainguard {
namespace {

// Every rank agreed to set `samples` aside after step `failed_step` failed on them: Run goes
// back to the last checkpoint. Caught in Run; its text is for a reader only if it escapes.
class SetAsideError : public Error {
 public:
  SetAsideError(std::vector<int64_t> samples, int64_t failed_step)
      : Error("internal: samples set aside at step " + std::to_string(failed_step) + " were not retrained"),
        samples(std::move(samples)),
        failed_step(failed_step) {}
  std::vector<int64_t> samples;
  int64_t failed_step;
};

// A rank's verdict for the others: "" (nothing to say), "+i j k" (set aside) or "-why" (refused).
std::string EncodeVerdict(const QuarantineVerdict& v) {
  if (!v.refusal.empty()) return "-" + v.refusal;
  if (v.samples.empty()) return "";
  std::string text = "+";
  for (int64_t i : v.samples) text += std::to_string(i) + " ";
  return text;
}

}  // namespace

bool UseFusedBlocks(const TrainConfig& config, torch::Device device) {
  if (config.fused_blocks == "off") return false;
  if (config.fused_blocks == "auto") return false;  // see train.h
  if (!BnReluPoolSupported(device)) {
    throw ConfigError("--fused-blocks on: this build has no fused kernels for " + device.str() +
                      " (built without nvcc); use --fused-blocks off");
  }
  const std::string missing = FusedKernelsMissingFor(device);
  if (!missing.empty()) throw ConfigError("--fused-blocks on: " + missing);
  return true;
}

ModelShape ModelShapeOf(const TrainConfig& config, const Dataset& dataset) {
  ModelShape shape;
  shape.dataset = config.dataset;
  shape.channels = dataset.shape().channels;
  shape.image_size = dataset.shape().height;
  shape.num_classes = config.num_classes > 0 ? config.num_classes : dataset.num_classes();
  shape.width = config.width;
  shape.precision = config.precision;
  return shape;
}

Hw3Net MakeModel(const TrainConfig& config, const Dataset& dataset, torch::Device train_device) {
  const ModelShape shape = ModelShapeOf(config, dataset);
  torch::manual_seed(config.seed);
  Hw3Options o;
  o.in_channels = shape.channels;
  o.image_size = shape.image_size;
  o.width = shape.width;
  o.num_classes = shape.num_classes;
  o.fused_blocks = UseFusedBlocks(config, train_device);
  return Hw3Net(o);
}

LoaderOptions LoaderFor(const TrainConfig& config, torch::Device device) {
  return {static_cast<int>(config.loader_threads), config.prefetch, device.is_cuda()};
}

std::unique_ptr<FusedAdam> MakeOptimizer(const TrainConfig& config, Hw3Net& model) {
  return std::make_unique<FusedAdam>(model->parameters(),
                                     torch::optim::AdamOptions(config.lr).weight_decay(config.weight_decay));
}

Trainer::Trainer(const TrainConfig& config, const Dataset& train, const Dataset* test, TrainContext context)
    : config_(config),
      train_(train),
      test_(test),
      ctx_(context),
      model_(MakeModel(config, train, context.device)),
      gpu_bus_id_(GpuBusId(context.device)) {
  model_->to(ctx_.device);
  optimizer_ = MakeOptimizer(config, model_);
  reducer_ = std::make_unique<GradReducer>(model_->parameters(), ctx_.data,
                                           static_cast<int64_t>(config.bucket_mb * 1024 * 1024));
  shape_ = {ctx_.control.world(), config.batch_size, train.size(), static_cast<int64_t>(config.seed),
            ModelShapeOf(config, train)};
  EnterPhase(Phase::kStarting, "the initial broadcast of the weights");
  BroadcastInitialWeights();
  std::optional<CheckpointOrigin> resumed;
  if (ResumeAgreed()) {
    EnterPhase(Phase::kStarting, "loading the checkpoint " + config.checkpoint);
    start_ = LoadCheckpointShared(ctx_.control, config.checkpoint, *model_, *optimizer_, shape_, &resumed.emplace());
    last_saved_ = start_;
  }
  if (ctx_.bad_samples != nullptr) set_aside_ = ctx_.bad_samples->SetAside();
  if (resumed && ctx_.control.rank() == 0) {
    LogLine(ResumeLine(config.checkpoint, *resumed, start_, KeptSamples(train.size(), set_aside_), ctx_.control.world(),
                       config.batch_size));
  }
}

bool Trainer::ResumeAgreed() {
  if (config_.resume == "yes") return true;
  if (config_.resume != "auto") return false;
  // Resumed when any rank sees the file: a rank that cannot see it fails in the agreed load,
  // with the file named, rather than starting a different run from the others.
  std::vector<int64_t> seen{std::filesystem::exists(config_.checkpoint) ? 1 : 0};
  ctx_.control.AllReduceMax(seen);
  if (seen[0] == 0 && ctx_.control.rank() == 0) {
    LogLine("--resume auto: no checkpoint " + config_.checkpoint + " yet; starting afresh");
  }
  return seen[0] > 0;
}

void Trainer::EnterPhase(Phase phase, const std::string& what) {
  for (StepHooks* h : ctx_.hooks) h->OnPhase(phase, what);
  for (TrainObserver* o : ctx_.observers) o->OnPhase(phase);
}

void Trainer::BroadcastInitialWeights() {
  torch::NoGradGuard no_grad;
  for (auto& p : model_->parameters()) ctx_.data.Broadcast(p.detach(), 0);
  for (auto& b : model_->buffers()) ctx_.data.Broadcast(b.detach(), 0);
}

void Trainer::AverageBuffers() {
  torch::NoGradGuard no_grad;
  for (auto& b : model_->buffers()) {
    if (!b.is_floating_point()) continue;  // num_batches_tracked is equal on every rank
    ctx_.data.StartSum(b.detach())->Wait();
    b.div_(ctx_.control.world());
  }
}

void Trainer::SaveAgreed(const TrainPosition& position) {
  if (config_.checkpoint.empty()) return;
  if (last_saved_ == position) return;
  EnterPhase(Phase::kCheckpointing, "the checkpoint after step " + std::to_string(position.global_step));
  AverageBuffers();
  RunAgreed(ctx_.control, [&] {
    if (ctx_.control.rank() != 0) return;
    const auto start = std::chrono::steady_clock::now();
    const int64_t bytes = SaveCheckpoint(config_.checkpoint, *model_, *optimizer_, position, shape_);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (TrainObserver* o : ctx_.observers) o->OnCheckpoint(position.global_step, seconds, bytes);
  });
  last_saved_ = position;
}

void Trainer::ReportTrainAccuracy(EpochReport& report) {
  EnterPhase(Phase::kEvaluating, "the end of epoch " + std::to_string(report.epoch + 1));
  std::vector<int64_t> counts{epoch_correct_.defined() ? epoch_correct_.item<int64_t>() : 0, epoch_valid_};
  ctx_.control.AllReduceSum(counts);
  if (counts[1] > 0) report.train_accuracy = static_cast<double>(counts[0]) / static_cast<double>(counts[1]);
  epoch_correct_ = torch::Tensor();
  epoch_valid_ = 0;
}

// One step. Host and device meet once: the copies in are asynchronous (from pinned memory on a
// GPU), and the local loss sum and the sum of the gradient norms come back in one read after
// backward. Two small control-plane agreements: the global count of valid targets (known on the
// host, agreed while the device computes the forward pass), which also carries whether any rank
// was asked to stop and whether any rank's forward failed (see QuarantinesHere), and the global loss sum (the log line
// and the non-finite verdict, which every rank reaches together). A failed verdict throws before the optimizer touches
// the weights. The count of correct predictions stays on the device until the epoch ends.
double Trainer::Step(const Batch& batch) {
  model_->train();
  local_loss_finite_ = true;
  gradient_not_finite_ = false;
  failure_agreed_ = false;
  global_valid_ = 0;
  auto images = batch.images.to(ctx_.device, /*non_blocking=*/true);
  auto targets = batch.targets.to(ctx_.device, /*non_blocking=*/true);
  const bool stop_asked = ctx_.stop_requested != nullptr && ctx_.stop_requested->load();
  // The loss is computed once: its value is read below, its graph goes into backward.
  torch::Tensor logits, local_sum;
  std::exception_ptr own_failure;  // this rank's forward failed, where the ranks agree on it below
  try {
    AutocastScope autocast(ctx_.device, config_.precision);
    logits = model_->forward(images);
    local_sum = SummedCrossEntropy(logits, targets, config_.ignore_index);
  } catch (const std::exception& e) {
    if (!QuarantinesHere(e)) throw;
    own_failure = std::current_exception();
  }
  std::vector<int64_t> agreed{batch.valid_targets, stop_asked ? 1 : 0, own_failure ? 1 : 0};
  const auto agree_start = std::chrono::steady_clock::now();
  ctx_.control.AllReduceSum(agreed);  // waits for the slowest rank's forward pass: a wait, not compute
  const double agree_wait_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - agree_start).count();
  const int64_t global_valid = agreed[0];
  global_valid_ = global_valid;
  stop_agreed_ = agreed[1] > 0;
  if (agreed[2] > 0) {  // before any gradient is exchanged: every rank leaves the step here
    failure_agreed_ = true;
    if (own_failure) std::rethrow_exception(own_failure);
    throw FaultError(ErrorKind::kBatchData, "the batch of another rank failed", 0);
  }
  optimizer_->zero_grad();
  GlobalMean(local_sum, global_valid).backward();
  const auto reduce_start = std::chrono::steady_clock::now();
  reducer_->Finish();
  allreduce_wait_s_ =
      agree_wait_s + std::chrono::duration<double>(std::chrono::steady_clock::now() - reduce_start).count();
  std::vector<torch::Tensor> grads;
  for (const auto& p : model_->parameters()) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  // One multi-tensor kernel for every gradient's norm; only whether their sum is finite matters.
  const auto norms =
      grads.empty() ? torch::zeros({}, local_sum.options()) : torch::stack(at::_foreach_norm(grads)).sum();
  const auto read = torch::stack({local_sum.detach().to(torch::kFloat32), norms}).to(torch::kFloat64).cpu();
  const double local = read[0].item<double>(), norm_sum = read[1].item<double>();
  local_loss_finite_ = std::isfinite(local);
  gradient_not_finite_ = false;
  std::vector<double> total{local};
  ctx_.control.AllReduceSum(total);
  const double global_loss = total[0] / static_cast<double>(std::max<int64_t>(global_valid, 1));
  if (!std::isfinite(global_loss)) {  // every rank sees the same sum: an agreed verdict
    throw FaultError(ErrorKind::kNonFinite, "the loss is not finite (" + std::to_string(global_loss) + ")");
  }
  // Gradients are the same on every rank after the reduction: so is this verdict.
  gradient_not_finite_ = !std::isfinite(norm_sum);
  if (gradient_not_finite_) {
    throw FaultError(ErrorKind::kNonFinite, "the gradient norm is not finite while the loss is");
  }
  optimizer_->step();
  // Ignored targets (negative, or never a class: ValidateTrainConfig) match no prediction.
  const auto correct = (logits.detach().argmax(1) == targets).sum();
  if (epoch_correct_.defined()) {
    epoch_correct_.add_(correct);
  } else {
    epoch_correct_ = correct;
  }
  epoch_valid_ += batch.valid_targets;
  return global_loss;
}

std::optional<double> Trainer::EvaluateEpoch(EpochReport& report) {
  if (!config_.evaluate || test_ == nullptr) return std::nullopt;
  EnterPhase(Phase::kEvaluating, "the evaluation after epoch " + std::to_string(report.epoch + 1));
  AverageBuffers();
  const Accuracy acc = Evaluate(model_, *test_, ctx_.control, ctx_.device, config_.batch_size, config_.ignore_index,
                                LoaderFor(config_, ctx_.device), [this] {
                                  for (TrainObserver* o : ctx_.observers) o->OnProgress();
                                  for (StepHooks* h : ctx_.hooks) h->OnProgress();
                                });
  model_->train();
  report.test_accuracy = acc.fraction();
  report.test_correct = acc.correct;
  report.test_total = acc.total;
  return acc.fraction();
}

EpochPlan Trainer::PlanEpoch(int64_t epoch, int64_t start) {
  EpochPlan plan;
  const int64_t kept = KeptSamples(train_.size(), set_aside_);
  if (kept == 0) {
    throw DataError("every training sample is in the quarantine file: nothing is left to train on; fix the data");
  }
  plan.epoch_samples = kept;
  plan.start = std::min(start, kept);
  plan.shard = TrainShard(
      {train_.size(), ctx_.control.rank(), ctx_.control.world(), config_.seed, epoch, true, set_aside_, plan.start});
  plan.unique_entries = UniqueShardEntries(kept - plan.start, ctx_.control.rank(), ctx_.control.world());
  EnterPhase(Phase::kValidating, "the label validation before epoch " + std::to_string(epoch + 1));
  for (TrainObserver* o : ctx_.observers) o->OnEpochBegin(epoch, plan);
  // Observers must keep shard sizes equal, or ranks would run different step counts and hang.
  std::vector<int64_t> size{static_cast<int64_t>(plan.shard.size()), -static_cast<int64_t>(plan.shard.size())};
  ctx_.control.AllReduceMax(size);
  if (size[0] != -size[1]) {
    throw Error("internal: epoch " + std::to_string(epoch) + " shards differ in size across ranks (" +
                std::to_string(-size[1]) + " to " + std::to_string(size[0]) + ")");
  }
  return plan;
}

double Trainer::GuardedStep(Batch& batch, const StepReport& where) {
  StepFailure failure;
  failure.where = where;
  failure.batch = &batch;
  failure.model = model_.ptr().get();
  try {
    // Inside the guard: what a hook raises before the step (an injected fault) is the step's.
    for (StepHooks* h : ctx_.hooks) h->BeforeStep(where, batch);
    const double loss = Step(batch);
    for (StepHooks* h : ctx_.hooks) h->AfterStep(where, *model_);
    return loss;
  } catch (const FaultError& e) {              // non-finite, or another rank's agreed batch failure
    if (e.kind() == ErrorKind::kStall) throw;  // a wait gave up: no batch is at fault
    failure.kind = e.kind();
    failure.what = e.what();
    failure.agreed = true;
    // A non-finite loss is the doing of the ranks whose own part was not finite. A non-finite
    // gradient norm with finite losses cannot be traced to a rank after the reduction: rank 0
    // keeps the evidence.
    failure.culprit = !local_loss_finite_ || (gradient_not_finite_ && ctx_.control.rank() == 0);
  } catch (const Error&) {
    throw;  // a peer's failure, a library failure: not this batch's doing
  } catch (const c10::DistError&) {
    throw;  // NCCL or c10d: the communication failed, not the batch
  } catch (const std::exception& e) {
    failure.kind = ClassifyStepError(e);
    failure.what = e.what();
    if (failure.kind == ErrorKind::kOutOfMemory) {
      failure.what = OutOfMemoryReport(config_, ctx_.device, where.global_step, batch.images, e.what());
    } else if (failure.kind == ErrorKind::kGpuFault) {
      failure.what = GpuFaultReport(HostName(), ctx_.device, gpu_bus_id_, e.what());
    }
    failure.culprit = true;
    failure.agreed = failure_agreed_;
  }
  failure.quarantine = ctx_.bad_samples != nullptr &&
                       (failure.kind == ErrorKind::kBatchData || failure.kind == ErrorKind::kDeviceAssert);
  failure.global_valid_targets = global_valid_;
  for (StepHooks* h : ctx_.hooks) h->OnStepFailed(failure);
  if (failure.quarantine) QuarantineOrStand(failure);
  throw FaultError(failure.kind,
                   "step " + std::to_string(where.global_step) + " (epoch " + std::to_string(where.epoch + 1) +
                       ") failed on rank " + std::to_string(ctx_.control.rank()) + ": " + FirstLine(failure.what),
                   where.global_step);
}

bool Trainer::QuarantinesHere(const std::exception& e) const {
  return ctx_.bad_samples != nullptr && !ctx_.device.is_cuda() && !config_.quarantine_by_restart &&
         dynamic_cast<const Error*>(&e) == nullptr && ClassifyStepError(e) == ErrorKind::kBatchData;
}

void Trainer::QuarantineOrStand(const StepFailure& failure) {
  const QuarantineVerdict mine = failure.culprit ? ctx_.bad_samples->Quarantine(failure) : QuarantineVerdict{};
  if (!failure.agreed) {  // the device is lost (or a restart was asked for): rerun me
    if (!failure.culprit || mine.samples.empty()) return;
    throw FaultError(ErrorKind::kQuarantined,
                     std::to_string(mine.samples.size()) + " sample(s) of step " +
                         std::to_string(failure.where.global_step) +
                         " set aside; the device cannot go on in this process: rerun the same command with "
                         "--resume auto to continue from the last checkpoint without them",
                     failure.where.global_step);
  }
  EnterPhase(Phase::kTraining, "the agreement on the bad samples of step " + std::to_string(failure.where.global_step));
  std::vector<int64_t> samples;
  std::string refusal;  // the first refusing rank's reason
  const std::vector<std::string> verdicts = ctx_.control.AllGather(EncodeVerdict(mine));
  for (size_t r = 0; r < verdicts.size(); ++r) {
    const std::string& v = verdicts[r];
    if (!v.empty() && v[0] == '-' && refusal.empty()) refusal = "rank " + std::to_string(r) + ": " + v.substr(1);
    std::istringstream in(v.empty() ? "" : v.substr(1));
    for (int64_t i = 0; !v.empty() && v[0] == '+' && in >> i;) samples.push_back(i);
  }
  if (!refusal.empty() || samples.empty()) {  // the failure stands on every rank
    if (failure.culprit) return;
    throw PeerError("step " + std::to_string(failure.where.global_step) +
                        " failed on another rank and its samples were not set aside (" +
                        (refusal.empty() ? "the diagnosis named none" : refusal) + ")",
                    failure.kind);
  }
  std::sort(samples.begin(), samples.end());
  throw SetAsideError(samples, failure.where.global_step);
}

TrainPosition Trainer::ResumeWithout(const std::vector<int64_t>& samples, int64_t failed_step) {
  std::vector<int64_t> merged;
  std::set_union(set_aside_.begin(), set_aside_.end(), samples.begin(), samples.end(), std::back_inserter(merged));
  set_aside_ = std::move(merged);
  EnterPhase(Phase::kStarting, "reloading the checkpoint " + config_.checkpoint + " after setting samples aside");
  optimizer_ = MakeOptimizer(config_, model_);  // a fresh one: FusedAdam caches its step counts between steps
  TrainPosition back;
  back = LoadCheckpointShared(ctx_.control, config_.checkpoint, *model_, *optimizer_, shape_);
  last_saved_ = back;
  epoch_correct_ = torch::Tensor();
  epoch_valid_ = 0;
  for (StepHooks* h : ctx_.hooks) h->OnModelReady(back.global_step, *model_);
  ctx_.bad_samples->OnSetAside(samples, failed_step, back.global_step);
  return back;
}

TrainSummary Trainer::Run() {
  using Clock = std::chrono::steady_clock;
  TrainSummary summary;
  TrainPosition pos = start_;
  for (StepHooks* h : ctx_.hooks) h->OnModelReady(pos.global_step, *model_);
  const int world = ctx_.control.world();
  int64_t timed_images = 0;
  Clock::time_point timer_start;

  auto budget_left = [&] { return config_.max_steps == 0 || summary.steps_this_run < config_.max_steps; };

  // With --bad-samples quarantine a checkpoint exists from the start: the place to go back to.
  if (ctx_.bad_samples != nullptr) SaveAgreed(pos);
  while (pos.epoch < config_.epochs && budget_left() && !stop_agreed_) {
    // The plan covers the rest of the epoch on this world: `step` counts its steps, while
    // pos.step_in_epoch counts the epoch's steps on every world that trained it.
    const EpochPlan plan = PlanEpoch(pos.epoch, pos.samples_in_epoch);
    const int64_t plan_steps = StepsPerEpoch(static_cast<int64_t>(plan.shard.size()), config_.batch_size);
    const int64_t steps_per_epoch = pos.step_in_epoch + plan_steps;
    int64_t step = 0;
    double loss_sum = 0;
    int64_t loss_count = 0;
    const LoaderOptions loader = LoaderFor(config_, ctx_.device);
    BatchPrefetcher batches(
        [&, epoch = pos.epoch](int64_t plan_step) {
          Batch b = MakeBatch(train_, Slice(plan.shard, plan_step * config_.batch_size, config_.batch_size),
                              config_.ignore_index, plan.ignored, {epoch});
          if (loader.pin) {  // faster copies to the GPU, asynchronous to the host
            b.images = b.images.pin_memory();
            b.targets = b.targets.pin_memory();
          }
          return b;
        },
        0, plan_steps, loader.threads, loader.window);
    const Clock::time_point loop_start = Clock::now();
    bool went_back = false;  // samples were set aside: the epoch of the checkpoint is planned again
    while (step < plan_steps && budget_left()) {
      const Clock::time_point wait_start = Clock::now();
      Batch batch = batches.Next();
      const double loader_wait = std::chrono::duration<double>(Clock::now() - wait_start).count();
      summary.loader_wait_seconds += loader_wait;
      const auto& indices = batch.indices;
      if (summary.steps_this_run == config_.warmup_steps) timer_start = Clock::now();
      const int64_t global_images = static_cast<int64_t>(indices.size()) * world;
      double loss = 0;
      try {
        loss = GuardedStep(batch,
                           {pos.epoch, pos.step_in_epoch + 1, steps_per_epoch, pos.global_step + 1, 0, global_images});
      } catch (const SetAsideError& e) {
        pos = ResumeWithout(e.samples, e.failed_step);
        went_back = true;
        break;
      } catch (const FaultError& e) {
        const bool device_lost = e.kind() == ErrorKind::kDeviceAssert || e.kind() == ErrorKind::kGpuFault ||
                                 e.kind() == ErrorKind::kQuarantined ||
                                 (e.kind() == ErrorKind::kInternal && ctx_.device.is_cuda());
        if (device_lost && ctx_.on_device_lost) ctx_.on_device_lost(e);
        throw;
      }
      ++step;
      ++pos.step_in_epoch;
      ++pos.global_step;
      pos.samples_in_epoch = TrainedEntries(plan.start, step, config_.batch_size, world, plan.epoch_samples);
      ++summary.steps_this_run;
      loss_sum += loss;
      ++loss_count;
      if (summary.steps_this_run > config_.warmup_steps) timed_images += global_images;
      const StepReport report{pos.epoch,
                              pos.step_in_epoch,
                              steps_per_epoch,
                              pos.global_step,
                              loss,
                              global_images,
                              static_cast<int64_t>(indices.size()),
                              loader_wait,
                              allreduce_wait_s_,
                              static_cast<int64_t>(indices.size()) - batch.valid_targets,
                              std::chrono::duration<double>(Clock::now() - wait_start).count()};
      for (TrainObserver* o : ctx_.observers) o->OnStepEnd(report);
      if (config_.checkpoint_every > 0 && pos.global_step % config_.checkpoint_every == 0) SaveAgreed(pos);
      if (stop_agreed_) break;
    }
    summary.loop_seconds += std::chrono::duration<double>(Clock::now() - loop_start).count();
    if (went_back) continue;
    if (step < plan_steps) break;  // stopped mid-epoch by max_steps or a stop request
    EpochReport report;
    report.epoch = pos.epoch;
    report.mean_loss = loss_count > 0 ? loss_sum / loss_count : 0;
    summary.test_accuracy = EvaluateEpoch(report);
    ReportTrainAccuracy(report);
    for (TrainObserver* o : ctx_.observers) o->OnEpochEnd(report);
    SaveAgreed({pos.epoch + 1, 0, pos.global_step, 0});
    ++pos.epoch;
    pos.step_in_epoch = 0;
    pos.samples_in_epoch = 0;
  }
  if (pos.epoch < config_.epochs && pos.step_in_epoch > 0) SaveAgreed(pos);  // stopped mid-epoch
  summary.preempted = stop_agreed_ && pos.epoch < config_.epochs && budget_left();
  if (timed_images > 0) {
    const double seconds = std::chrono::duration<double>(Clock::now() - timer_start).count();
    summary.images_per_second = timed_images / seconds;
  }
  summary.end = pos;
  return summary;
}

std::string LoaderWaitLine(const TrainSummary& summary) {
  const double share = summary.loop_seconds > 0 ? summary.loader_wait_seconds / summary.loop_seconds : 0;
  char line[200];
  std::snprintf(line, sizeof line, "loader wait: %.1f s of %.1f s in the training loop (%.1f%%)%s",
                summary.loader_wait_seconds, summary.loop_seconds, 100 * share,
                share > 0.1 ? "; decoding does not keep up: raise --loader-threads" : "");
  return line;
}

}  // namespace trainguard
