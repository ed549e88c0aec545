// Repro bundles on disk (see bundle.h).
#include "diagnostics/faults/bundle.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "trainer/core/atomic_file.h"

namespace trainguard {

using json = nlohmann::json;

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kBatchData: return "batch_data";
    case ErrorKind::kDeviceAssert: return "device_assert";
    case ErrorKind::kNonFinite: return "non_finite";
    case ErrorKind::kStall: return "stall";
    default: return "internal";
  }
}

std::map<std::string, torch::Tensor> HostWeights(const torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value().detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);
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

}  // namespace

void WriteBundle(const std::string& dir, const Bundle& b) {
  ::mkdir(dir.c_str(), 0755);  // an existing folder is reused
  const BundleMeta& m = b.meta;
  json j = {{"kind", m.kind},       {"error", m.error},         {"rank", m.rank},
            {"world", m.world},     {"epoch", m.epoch},         {"step_in_epoch", m.step_in_epoch},
            {"global_step", m.global_step}, {"indices", m.indices}, {"sources", m.sources},
            {"raw_labels", m.raw_labels},   {"num_classes", m.num_classes}, {"ignore_index", m.ignore_index},
            {"in_channels", m.in_channels}, {"image_size", m.image_size},   {"width", m.width},
            {"device", m.device},   {"weights_from", m.weights_from}, {"config", m.config}};
  torch::serialize::OutputArchive tensors, weights;
  tensors.write("images", b.images.to(torch::kCPU));
  tensors.write("targets", b.targets.to(torch::kCPU));
  tensors.write("rng_state", b.rng_state);
  for (const auto& [name, t] : b.weights) weights.write(ToKey(name), t);
  tensors.write("weights", weights);
  std::ostringstream bytes;
  tensors.save_to(bytes);
  WriteFileAtomically(dir + "/tensors.pt", bytes.str());
  // meta.json last: its presence means the bundle is complete.
  WriteFileAtomically(dir + "/meta.json", j.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

Bundle ReadBundle(const std::string& dir) {
  Bundle b;
  try {
    const json j = json::parse(ReadWholeFile(dir + "/meta.json"));
    BundleMeta& m = b.meta;
    m.kind = j.at("kind");
    m.error = j.at("error");
    m.rank = j.at("rank");
    m.world = j.at("world");
    m.epoch = j.at("epoch");
    m.step_in_epoch = j.at("step_in_epoch");
    m.global_step = j.at("global_step");
    m.indices = j.at("indices").get<std::vector<int64_t>>();
    m.sources = j.at("sources").get<std::vector<std::string>>();
    m.raw_labels = j.at("raw_labels").get<std::vector<std::string>>();
    m.num_classes = j.at("num_classes");
    m.ignore_index = j.at("ignore_index");
    m.in_channels = j.at("in_channels");
    m.image_size = j.at("image_size");
    m.width = j.at("width");
    m.device = j.at("device");
    m.weights_from = j.at("weights_from");
    m.config = j.at("config");
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
  } catch (const IoError& e) {
    throw DataError(std::string("bundle ") + dir + " is incomplete: " + e.what() + "; pass the folder the failing rank named");
  } catch (const std::exception& e) {
    throw DataError("bundle " + dir + " is damaged: " + e.what());
  }
  return b;
}

}  // namespace trainguard
