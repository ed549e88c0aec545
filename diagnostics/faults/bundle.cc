// Repro bundles on disk (see bundle.h).
#include "diagnostics/faults/bundle.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "trainer/core/atomic_file.h"

namespace trainguard {

using json = nlohmann::json;

// meta.json is BundleMeta field by field, under the fields' names; a field missing from an older
// bundle keeps its default.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BundleMeta, kind, error, rank, world, epoch, step_in_epoch, global_step,
                                                indices, sources, raw_labels, num_classes, ignore_index, in_channels,
                                                image_size, width, device, precision, global_valid_targets,
                                                weights_from, weights_own, weights_ready_step, last_good_step,
                                                last_good_norms, config)

std::map<std::string, torch::Tensor> HostWeights(const torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model.named_parameters())
    out[p.key()] = p.value().detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);
  for (const auto& b : model.named_buffers()) out[b.key()] = b.value().detach().to(torch::kCPU, false, true);
  return out;
}

namespace {

// Archive keys may not contain '.', which parameter names do: "features.0.weight" is stored as
// "features__0__weight".
std::string ToKey(std::string name) {
  for (size_t at; (at = name.find('.')) != std::string::npos;) name.replace(at, 1, "__");
  return name;
}

std::string FromKey(std::string key) {
  for (size_t at; (at = key.find("__")) != std::string::npos;) key.replace(at, 2, ".");
  return key;
}

// tensors.pt: the batch, the RNG state and the weights.
void WriteTensors(const std::string& dir, const Bundle& b) {
  torch::serialize::OutputArchive tensors, weights;
  tensors.write("images", b.images.to(torch::kCPU));
  tensors.write("targets", b.targets.to(torch::kCPU));
  tensors.write("rng_state", b.rng_state);
  for (const auto& [name, t] : b.weights) weights.write(ToKey(name), t);
  tensors.write("weights", weights);
  std::ostringstream bytes;
  tensors.save_to(bytes);
  WriteFileAtomically(dir + "/tensors.pt", bytes.str());
}

}  // namespace

void WriteBundle(const std::string& dir, const Bundle& b) {
  ::mkdir(dir.c_str(), 0755);  // an existing folder is reused
  const json j = b.meta;
  if (b.images.defined()) WriteTensors(dir, b);
  // meta.json last: its presence means the bundle is complete.
  WriteFileAtomically(dir + "/meta.json", j.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

Bundle ReadBundle(const std::string& dir) {
  Bundle b;
  try {
    b.meta = json::parse(ReadWholeFile(dir + "/meta.json")).get<BundleMeta>();
    if (b.meta.kind == ErrorKindName(ErrorKind::kOutOfMemory)) {
      throw DataError("bundle " + dir + " is of an out-of-memory failure: it names the batch's samples and the " +
                      "memory figures (meta.json) and holds no tensors; there is nothing to re-run");
    }
    const std::string bytes = ReadWholeFile(dir + "/tensors.pt");
    torch::serialize::InputArchive tensors, weights;
    tensors.load_from(bytes.data(), bytes.size());
    tensors.read("images", b.images);
    tensors.read("targets", b.targets);
    tensors.read("rng_state", b.rng_state);
    tensors.read("weights", weights);
    for (const auto& key : weights.keys()) {
      torch::Tensor t;
      weights.read(key, t);
      b.weights[FromKey(key)] = t;
    }
  } catch (const DataError&) {
    throw;
  } catch (const IoError& e) {
    throw DataError(std::string("bundle ") + dir + " is incomplete: " + e.what() +
                    "; pass the folder the failing rank named");
  } catch (const std::exception& e) {
    throw DataError("bundle " + dir + " is damaged: " + e.what());
  }
  return b;
}

}  // namespace trainguard
