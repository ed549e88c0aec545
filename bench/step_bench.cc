// trainguard's training step on inputs already resident on the device: the peer of
// bench/gpu_step_bench.py (Python eager and torch.compile of the same HW3 step), without the
// loader, so the two measure the same thing. One process, one rank (solo planes).
//   step_bench [--device cuda|cpu] [--precision fp32|bf16] [--fused-blocks auto|on|off] [--batch 512]
//              [--image-size 128] [--width 1.0] [--classes 11] [--steps 40] [--warmup 5]
// Prints one line, in gpu_step_bench.py's form (with "-fused" when the blocks are fused):
//   mode=trainguard-<precision>[-fused] batch=B steps=S img_per_s=X ms_per_step=Y
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "trainer/data/synthetic.h"
#include "trainer/train.h"

int main(int argc, char** argv) {
  using namespace trainguard;
  std::string device_name = "cuda", precision = "fp32", fused_blocks = "auto";
  int64_t batch = 512, image_size = 128, classes = 11, steps = 40, warmup = 5;
  double width = 1.0;
  CLI::App app{"trainguard's training step on device-resident inputs"};
  app.add_option("--device", device_name)->capture_default_str();
  app.add_option("--precision", precision)->capture_default_str();
  app.add_option("--fused-blocks", fused_blocks)->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--image-size", image_size)->capture_default_str();
  app.add_option("--width", width)->capture_default_str();
  app.add_option("--classes", classes)->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str();
  app.add_option("--warmup", warmup)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const torch::Device device(device_name);

  // The dataset only sizes the model (3 channels, image_size, classes); no batch comes from it.
  auto shape_source = MakeSyntheticDataset({classes, classes, {3, image_size, image_size}, 0, 0.5, {}});
  TrainConfig config;
  config.width = width;
  config.batch_size = batch;
  config.precision = precision;
  config.fused_blocks = fused_blocks;
  config.num_classes = classes;
  config.evaluate = false;
  SoloControlPlane control;
  SoloDataPlane plane;
  Trainer trainer(config, *shape_source, nullptr, {control, plane, device});

  torch::manual_seed(0);
  Batch resident;
  resident.images = torch::randn({batch, 3, image_size, image_size}, torch::TensorOptions().device(device));
  resident.targets = torch::randint(classes, {batch}, torch::TensorOptions().device(device).dtype(torch::kLong));
  resident.valid_targets = batch;
  for (int64_t i = 0; i < warmup; ++i) trainer.Step(resident);
  // Each step reads its loss on the host: the timing needs no extra synchronisation.
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) trainer.Step(resident);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const char* fused = UseFusedBlocks(config, device) ? "-fused" : "";
  std::printf("mode=trainguard-%s%s batch=%lld steps=%lld img_per_s=%.0f ms_per_step=%.2f\n", precision.c_str(), fused,
              static_cast<long long>(batch), static_cast<long long>(steps), batch * steps / seconds,
              1000 * seconds / steps);
  return 0;
}
