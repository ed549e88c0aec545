// The training loop (see train.h).
#include "trainer/train.h"

#include <chrono>

#include "trainer/core/errors.h"
#include "trainer/core/sharding.h"
#include "trainer/evaluate.h"
#include "trainer/loss.h"

namespace trainguard {

Hw3Net MakeModel(const TrainConfig& config, const Dataset& dataset) {
  const ImageShape shape = dataset.shape();
  torch::manual_seed(config.seed);
  Hw3Options o;
  o.in_channels = shape.channels;
  o.image_size = shape.height;
  o.width = config.width;
  o.num_classes = config.num_classes > 0 ? config.num_classes : dataset.num_classes();
  return Hw3Net(o);
}

std::unique_ptr<torch::optim::Adam> MakeOptimizer(const TrainConfig& config, Hw3Net& model) {
  return std::make_unique<torch::optim::Adam>(
      model->parameters(), torch::optim::AdamOptions(config.lr).weight_decay(config.weight_decay));
}

Trainer::Trainer(const TrainConfig& config, const Dataset& train, const Dataset* test, TrainContext context)
    : config_(config), train_(train), test_(test), ctx_(context), model_(MakeModel(config, train)) {
  model_->to(ctx_.device);
  optimizer_ = MakeOptimizer(config, model_);
  reducer_ = std::make_unique<GradReducer>(model_->parameters(), ctx_.data,
                                           static_cast<int64_t>(config.bucket_mb * 1024 * 1024));
  shape_ = {ctx_.control.world(), config.batch_size, train.size(), static_cast<int64_t>(config.seed)};
  BroadcastInitialWeights();
  if (config.resume) {
    RunAgreed(ctx_.control, [&] { start_ = LoadCheckpoint(config.checkpoint, *model_, *optimizer_, shape_); });
  }
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
  AverageBuffers();
  RunAgreed(ctx_.control, [&] {
    if (ctx_.control.rank() == 0) SaveCheckpoint(config_.checkpoint, *model_, *optimizer_, position, shape_);
  });
}

double Trainer::Step(const Batch& batch) {
  model_->train();
  auto logits = model_->forward(batch.images.to(ctx_.device));
  auto targets = batch.targets.to(ctx_.device);
  namespace F = torch::nn::functional;
  auto local_sum = F::cross_entropy(
      logits.detach(), targets, F::CrossEntropyFuncOptions().ignore_index(config_.ignore_index).reduction(torch::kSum));
  // One agreement per step: the global count of valid targets and the global loss sum.
  std::vector<double> totals{static_cast<double>(batch.valid_targets), local_sum.item<double>()};
  ctx_.control.AllReduceSum(totals);
  const auto global_valid = static_cast<int64_t>(totals[0]);
  auto loss = GlobalMeanCrossEntropy(logits, targets, config_.ignore_index, global_valid);
  optimizer_->zero_grad();
  loss.backward();
  reducer_->Finish();
  optimizer_->step();
  return totals[1] / static_cast<double>(std::max<int64_t>(global_valid, 1));
}

std::optional<double> Trainer::EvaluateEpoch(EpochReport& report) {
  if (!config_.evaluate || test_ == nullptr) return std::nullopt;
  AverageBuffers();
  const Accuracy acc = Evaluate(model_, *test_, ctx_.control, ctx_.device, config_.batch_size, config_.ignore_index);
  model_->train();
  report.test_accuracy = acc.fraction();
  report.test_correct = acc.correct;
  report.test_total = acc.total;
  return acc.fraction();
}

EpochPlan Trainer::PlanEpoch(int64_t epoch) {
  EpochPlan plan;
  plan.shard = TrainShard({train_.size(), ctx_.control.rank(), ctx_.control.world(), config_.seed, epoch, true});
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

TrainSummary Trainer::Run() {
  using Clock = std::chrono::steady_clock;
  TrainSummary summary;
  TrainPosition pos = start_;
  const int world = ctx_.control.world();
  int64_t timed_images = 0;
  Clock::time_point timer_start;

  auto budget_left = [&] { return config_.max_steps == 0 || summary.steps_this_run < config_.max_steps; };

  for (; pos.epoch < config_.epochs && budget_left(); ++pos.epoch, pos.step_in_epoch = 0) {
    const EpochPlan plan = PlanEpoch(pos.epoch);
    const int64_t steps_per_epoch = StepsPerEpoch(static_cast<int64_t>(plan.shard.size()), config_.batch_size);
    double loss_sum = 0;
    int64_t loss_count = 0;
    while (pos.step_in_epoch < steps_per_epoch && budget_left()) {
      const auto indices = Slice(plan.shard, pos.step_in_epoch * config_.batch_size, config_.batch_size);
      const Batch batch = MakeBatch(train_, indices, config_.ignore_index, plan.ignored);
      if (summary.steps_this_run == config_.warmup_steps) timer_start = Clock::now();
      const double loss = Step(batch);
      ++pos.step_in_epoch;
      ++pos.global_step;
      ++summary.steps_this_run;
      loss_sum += loss;
      ++loss_count;
      const int64_t global_images = static_cast<int64_t>(indices.size()) * world;
      if (summary.steps_this_run > config_.warmup_steps) timed_images += global_images;
      const StepReport report{pos.epoch, pos.step_in_epoch, steps_per_epoch, pos.global_step, loss, global_images};
      for (TrainObserver* o : ctx_.observers) o->OnStepEnd(report);
      if (config_.checkpoint_every > 0 && pos.global_step % config_.checkpoint_every == 0) SaveAgreed(pos);
    }
    if (pos.step_in_epoch < steps_per_epoch) break;  // stopped by max_steps mid-epoch
    EpochReport report;
    report.epoch = pos.epoch;
    report.mean_loss = loss_count > 0 ? loss_sum / loss_count : 0;
    summary.test_accuracy = EvaluateEpoch(report);
    for (TrainObserver* o : ctx_.observers) o->OnEpochEnd(report);
    SaveAgreed({pos.epoch + 1, 0, pos.global_step});
  }
  if (pos.epoch < config_.epochs && pos.step_in_epoch > 0) SaveAgreed(pos);  // stopped mid-epoch
  if (timed_images > 0) {
    const double seconds = std::chrono::duration<double>(Clock::now() - timer_start).count();
    summary.images_per_second = timed_images / seconds;
  }
  summary.end = pos;
  return summary;
}

}  // namespace trainguard
