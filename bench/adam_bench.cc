// The optimizer step alone, side by side in one process: torch::optim::Adam (about ten tensor
// operations per parameter) against trainguard's FusedAdam (one fused call), on the parameters of
// the HW3 network, interleaved in rounds so that machine noise falls on both alike.
//   adam_bench [--device cpu|cuda] [--width 1.0] [--image-size 128] [--steps 20] [--rounds 5]
// Prints one line per optimizer and the ratio:
//   adam=torch ms_per_step=X / adam=fused ms_per_step=Y / fused_speedup=X/Y
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "trainer/fused_adam.h"
#include "trainer/model/hw3_net.h"

namespace {

// Milliseconds per step of `adam` over `steps` steps (the device is synchronised at both ends).
double TimeSteps(torch::optim::Optimizer& adam, int64_t steps, torch::Device device) {
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  sync();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) adam.step();
  sync();
  return 1000 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace trainguard;
  std::string device_name = "cpu";
  double width = 1.0;
  int64_t image_size = 128, steps = 20, rounds = 5;
  CLI::App app{"torch::optim::Adam against FusedAdam on the HW3 parameters"};
  app.add_option("--device", device_name)->capture_default_str();
  app.add_option("--width", width)->capture_default_str();
  app.add_option("--image-size", image_size)->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str();
  app.add_option("--rounds", rounds)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const torch::Device device(device_name);

  Hw3Net torch_net(Hw3Options{3, image_size, width, 11}), fused_net(Hw3Options{3, image_size, width, 11});
  torch_net->to(device);
  fused_net->to(device);
  for (auto* net : {&torch_net, &fused_net}) {
    for (auto& p : (*net)->parameters()) p.mutable_grad() = torch::randn_like(p);
  }
  const auto options = torch::optim::AdamOptions(1e-3).weight_decay(1e-5);
  torch::optim::Adam torch_adam(torch_net->parameters(), options);
  FusedAdam fused_adam(fused_net->parameters(), options);
  TimeSteps(torch_adam, 2, device);  // warm-up: state allocation, first kernels
  TimeSteps(fused_adam, 2, device);
  double torch_ms = 1e30, fused_ms = 1e30;  // the best round of each
  for (int64_t r = 0; r < rounds; ++r) {
    torch_ms = std::min(torch_ms, TimeSteps(torch_adam, steps, device));
    fused_ms = std::min(fused_ms, TimeSteps(fused_adam, steps, device));
  }
  int64_t numel = 0;
  for (const auto& p : fused_net->parameters()) numel += p.numel();
  std::printf("device=%s parameters=%lld\n", device_name.c_str(), static_cast<long long>(numel));
  std::printf("adam=torch ms_per_step=%.3f\nadam=fused ms_per_step=%.3f\nfused_speedup=%.2f\n", torch_ms, fused_ms,
              torch_ms / fused_ms);
  return 0;
}
