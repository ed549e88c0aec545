// Re-runs of a failed step (see rerun.h).
#include "diagnostics/faults/rerun.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "trainer/core/log.h"
#include "trainer/loss.h"
#include "trainer/model/hw3_net.h"
#include "trainer/precision.h"

namespace trainguard {
namespace {

Hw3Net LoadModel(const Bundle& b, torch::Device device, bool training) {
  Hw3Options o;
  o.in_channels = b.meta.in_channels;
  o.image_size = b.meta.image_size;
  o.width = b.meta.width;
  o.num_classes = b.meta.num_classes;
  Hw3Net model(o);  // unfused: the same arithmetic as the fused blocks, module by module
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) p.value().copy_(b.weights.at(p.key()));
    for (auto& buf : model->named_buffers()) buf.value().copy_(b.weights.at(buf.key()));
  }
  model->to(device);
  model->train(training);
  return model;
}

// "torch::nn::Conv2dImpl" -> "Conv2d"
std::string TypeName(const torch::nn::Module& m) {
  std::string n = m.name();
  if (n.rfind("torch::nn::", 0) == 0) n = n.substr(11);
  if (n.size() > 4 && n.compare(n.size() - 4, 4, "Impl") == 0) n.resize(n.size() - 4);
  return n;
}

bool AllFinite(const torch::Tensor& t) { return !t.defined() || torch::isfinite(t).all().item<bool>(); }

// The largest finite |value| of t, 0 when none is.
double LargestFinite(const torch::Tensor& t) {
  const auto finite = t.detach().to(torch::kFloat64).abs().masked_select(torch::isfinite(t));
  return finite.numel() == 0 ? 0.0 : finite.max().item<double>();
}

// The model's modules in forward order, with their names and parameters' full names.
struct Layer {
  std::string name;  // "features.0"
  std::string type;  // "Conv2d"
  torch::nn::AnyModule* module;
  std::vector<std::pair<std::string, torch::Tensor>> params;  // "features.0.weight", ...
};

std::vector<Layer> Layers(Hw3Net& model) {
  std::vector<Layer> out;
  std::vector<std::pair<std::string, torch::nn::Sequential>> parts{{"features", model->features},
                                                                   {"classifier", model->classifier}};
  for (auto& [prefix, seq] : parts) {
    for (size_t i = 0; i < seq->size(); ++i) {
      Layer s;
      s.name = prefix + "." + std::to_string(i);
      s.type = TypeName(*seq[i]);
      s.module = &seq->begin()[static_cast<std::ptrdiff_t>(i)];
      for (const auto& p : seq[i]->named_parameters()) s.params.emplace_back(s.name + "." + p.key(), p.value());
      out.push_back(std::move(s));
    }
  }
  return out;
}

// One forward pass module by module under `mode`, keeping every output (with its gradient
// retained when `graph`), then the loss as the step computes it.
struct Walk {
  Hw3Net model{nullptr};
  std::vector<Layer> layers;
  std::vector<torch::Tensor> outputs;  // of each stage that ran
  std::string error;                   // what a stage raised (outputs holds those before it)
  torch::Tensor summed, loss;          // the summed cross-entropy and the loss (summed / divisor)
};

Walk Forward(const Bundle& b, torch::Device device, const RerunMode& mode, const std::vector<int64_t>& rows,
             int64_t divisor, bool graph, int64_t stop_after = -1) {
  Walk w;
  w.model = LoadModel(b, device, mode.training);
  w.layers = Layers(w.model);
  const auto idx = torch::tensor(rows, torch::kInt64);
  torch::Tensor x = b.images.index_select(0, idx).to(device).contiguous(torch::MemoryFormat::ChannelsLast);
  const torch::Tensor targets = b.targets.index_select(0, idx).to(device);
  std::optional<torch::NoGradGuard> no_grad;
  if (!graph) no_grad.emplace();
  AutocastScope autocast(device, mode.bf16 ? "bf16" : "fp32");
  try {
    for (size_t i = 0; i < w.layers.size(); ++i) {
      x = w.layers[i].module->forward(x);
      if (graph && x.requires_grad()) x.retain_grad();
      w.outputs.push_back(x);
      if (static_cast<int64_t>(i) == stop_after) return w;
    }
    w.summed = SummedCrossEntropy(x, targets, b.meta.ignore_index);
  } catch (const std::exception& e) {
    w.error = FirstLine(e.what());
    return w;
  }
  w.loss = GlobalMean(w.summed, divisor);
  return w;
}

// Every parameter's gradient, in the model's order (undefined ones left out).
std::vector<torch::Tensor> Gradients(Hw3Net& model) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : model->parameters()) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  return grads;
}

// The sum of the gradients' norms as the step computes it: one multi-tensor norm, in fp32.
double NormSum(Hw3Net& model) {
  const std::vector<torch::Tensor> grads = Gradients(model);
  if (grads.empty()) return 0;
  return torch::stack(at::_foreach_norm(grads)).sum().item<double>();
}

std::string GradFnName(const torch::Tensor& t) { return t.defined() && t.grad_fn() ? t.grad_fn()->name() : ""; }

}  // namespace

std::vector<int64_t> NonFiniteRows(const torch::Tensor& x) {
  auto rows = torch::isfinite(x).logical_not().flatten(1).any(1).nonzero().view(-1).to(torch::kCPU);
  return std::vector<int64_t>(rows.data_ptr<int64_t>(), rows.data_ptr<int64_t>() + rows.numel());
}

std::vector<std::pair<std::string, bool>> Rerun::WeightNames() const {
  Hw3Net model = LoadModel(b_, torch::kCPU, true);
  std::vector<std::pair<std::string, bool>> names;
  for (const auto& p : model->named_parameters()) names.emplace_back(p.key(), false);
  for (const auto& buf : model->named_buffers()) names.emplace_back(buf.key(), true);
  return names;
}

std::string Rerun::ModuleOf(const std::string& parameter) const {
  Hw3Net model = LoadModel(b_, torch::kCPU, true);
  for (const Layer& layer : Layers(model)) {
    if (parameter.rfind(layer.name + ".", 0) == 0) return layer.name + " (" + layer.type + ")";
  }
  return parameter.substr(0, parameter.rfind('.'));
}

Budget::Budget(double seconds) {
  if (seconds > 0) {
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  }
}

void Budget::Took(double seconds) const { longest_s_ = std::max(longest_s_, seconds); }

bool Budget::Fits() const {
  if (!deadline_) return true;
  const bool fits = std::chrono::steady_clock::now() + std::chrono::duration<double>(2 * longest_s_) < *deadline_;
  if (!fits) exhausted_ = true;
  return fits;
}

std::string RerunMode::Name() const {
  return std::string(training ? "training mode" : "eval mode") + (bf16 ? ", bf16 autocast" : ", fp32");
}

Rerun::Rerun(const Bundle& bundle, torch::Device device, const Budget& budget)
    : b_(bundle), device_(device), budget_(budget) {
  const auto& t = bundle.targets;
  const int64_t batch_valid = t.ne(bundle.meta.ignore_index).sum().item<int64_t>();
  divisor_ = bundle.meta.global_valid_targets > 0 ? bundle.meta.global_valid_targets : batch_valid;
}

std::vector<int64_t> Rerun::AllRows() const {
  std::vector<int64_t> all(static_cast<size_t>(b_.images.size(0)));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

RerunOutcome Rerun::Step(const RerunMode& mode, const std::vector<int64_t>& rows) const {
  const auto start = std::chrono::steady_clock::now();
  RerunOutcome out = StepUntimed(mode, rows);
  budget_.Took(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return out;
}

RerunOutcome Rerun::StepUntimed(const RerunMode& mode, const std::vector<int64_t>& rows) const {
  RerunOutcome out;
  Walk w = Forward(b_, device_, mode, rows, divisor_, /*graph=*/true);
  using S = RerunOutcome::Stage;
  if (!w.error.empty()) {
    out.stage = S::kRaised;
    out.error = w.error;
    return out;
  }
  try {
    out.loss = w.loss.item<double>();
    if (!AllFinite(w.outputs.back())) {
      out.stage = S::kForward;
      return out;
    }
    if (!std::isfinite(out.loss)) {
      out.stage = S::kLoss;
      return out;
    }
    w.loss.backward();
    out.grad_norm = NormSum(w.model);
    if (!std::isfinite(out.grad_norm)) out.stage = S::kGradient;
  } catch (const std::exception& e) {
    out.stage = S::kRaised;
    out.error = FirstLine(e.what());
  }
  return out;
}

std::optional<ForwardFinding> Rerun::FirstNonFiniteModule(const RerunMode& mode,
                                                          const std::vector<int64_t>& rows) const {
  Walk w = Forward(b_, device_, mode, rows, divisor_, /*graph=*/false);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    ForwardFinding f;
    f.operation = w.layers[i].type;
    f.module = w.layers[i].name + " (" + f.operation + ")";
    f.index = static_cast<int64_t>(i);
    if (i == w.outputs.size()) {  // this stage raised
      f.error = w.error;
      return f;
    }
    const std::vector<int64_t> bad = NonFiniteRows(w.outputs[i]);
    if (bad.empty()) continue;
    for (int64_t r : bad) f.rows.push_back(rows[static_cast<size_t>(r)]);
    return f;
  }
  return std::nullopt;
}

double Rerun::LargestOutput(const RerunMode& mode, const std::vector<int64_t>& rows, int64_t index) const {
  Walk w = Forward(b_, device_, mode, rows, divisor_, /*graph=*/false, index);
  if (static_cast<int64_t>(w.outputs.size()) <= index) return std::numeric_limits<double>::infinity();
  const torch::Tensor& out = w.outputs[static_cast<size_t>(index)];
  return AllFinite(out) ? LargestFinite(out) : std::numeric_limits<double>::infinity();
}

std::optional<GradientFinding> Rerun::FirstNonFiniteGradient(const RerunMode& mode,
                                                             const std::vector<int64_t>& rows) const {
  Walk w = Forward(b_, device_, mode, rows, divisor_, /*graph=*/true);
  if (!w.error.empty() || !w.loss.defined()) return std::nullopt;
  try {
    w.loss.backward();
  } catch (const std::exception&) {
    return std::nullopt;  // the step's outcome says what backward raised
  }
  GradientFinding f;
  // The loss's backward: the gradient of the logits.
  const torch::Tensor& logits = w.outputs.back();
  if (!AllFinite(logits.grad())) {
    f.module = "loss";
    f.operation = "cross_entropy (" + GradFnName(w.summed) + ")";
    f.largest = LargestFinite(logits.grad());
    return f;
  }
  // Each module in backward order: its parameters' gradients, then the gradient it passes to its input.
  for (size_t k = w.layers.size(); k-- > 0;) {
    const Layer& s = w.layers[k];
    f.module = s.name + " (" + s.type + ")";
    f.operation = GradFnName(w.outputs[k]);
    for (const auto& [name, p] : s.params) {
      if (!AllFinite(p.grad())) {
        f.parameter = name;
        f.largest = LargestFinite(p.grad());
        return f;
      }
    }
    if (k > 0 && !AllFinite(w.outputs[k - 1].grad())) {
      f.largest = LargestFinite(w.outputs[k - 1].grad());
      return f;
    }
  }
  // Every value is finite: the first parameter, in backward order, whose fp32 norm overflows.
  for (size_t k = w.layers.size(); k-- > 0;) {
    const Layer& s = w.layers[k];
    for (const auto& [name, p] : s.params) {
      if (!p.grad().defined() || std::isfinite(p.grad().norm().item<double>())) continue;
      f.module = s.name + " (" + s.type + ")";
      f.operation = GradFnName(w.outputs[k]);
      f.parameter = name;
      f.values_finite = true;
      f.largest = LargestFinite(p.grad());
      return f;
    }
  }
  return std::nullopt;
}

std::vector<int64_t> Rerun::Bisect(const RerunMode& mode, std::vector<int64_t> rows) const {
  while (rows.size() > 1 && budget_.Fits()) {
    const auto mid = rows.begin() + static_cast<std::ptrdiff_t>(rows.size() / 2);
    std::vector<int64_t> left(rows.begin(), mid), right(mid, rows.end());
    if (Step(mode, left).fails())
      rows = left;
    else if (Step(mode, right).fails())
      rows = right;
    else
      break;  // only the two halves together fail
  }
  return rows;
}

}  // namespace trainguard
