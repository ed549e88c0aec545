// Checkpoint writing and reading (see checkpoint.h).
#include "trainer/checkpoint.h"

#include <zlib.h>

#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <sstream>

#include "trainer/core/atomic_file.h"
#include "trainer/core/errors.h"

namespace trainguard {
namespace {

const char kMagic[] = "TRAINGUARD-CHECKPOINT 1\n";
constexpr size_t kMagicSize = sizeof kMagic - 1;
constexpr size_t kHeaderSize = kMagicSize + 8 + 4;

uint32_t Crc32(const std::string& bytes) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

void PutScalar(torch::serialize::OutputArchive& a, const char* key, int64_t v) {
  a.write(key, torch::tensor(v, torch::kInt64));
}

int64_t GetScalar(torch::serialize::InputArchive& a, const char* key) {
  torch::Tensor t;
  a.read(key, t);
  return t.item<int64_t>();
}

// The scalar under `key`, or `absent` in a file written before it was stored.
int64_t GetScalarOr(torch::serialize::InputArchive& a, const char* key, int64_t absent) {
  torch::Tensor t;
  return a.try_read(key, t) ? t.item<int64_t>() : absent;
}

// "3 ranks", "1 rank".
std::string Ranks(int64_t n) { return std::to_string(n) + (n == 1 ? " rank" : " ranks"); }

// "2026-12-07 21:50:12 UTC", or "at an unknown time" for 0.
std::string UtcText(int64_t unix_seconds) {
  if (unix_seconds <= 0) return "at an unknown time";
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
  return text;
}

// Shapes of every parameter and buffer, by name.
std::map<std::string, std::vector<int64_t>> ShapesOf(const torch::nn::Module& model) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& item : model.named_parameters()) shapes[item.key()] = item.value().sizes().vec();
  for (const auto& item : model.named_buffers()) shapes[item.key()] = item.value().sizes().vec();
  return shapes;
}

// The model shape's keys in the archive; "model_classes" marks a file that has the record.
void PutModelShape(torch::serialize::OutputArchive& a, const ModelShape& m) {
  if (m.num_classes <= 0) return;  // not known to the writer: no record
  a.write("model_dataset", c10::IValue(m.dataset));
  PutScalar(a, "model_channels", m.channels);
  PutScalar(a, "model_image_size", m.image_size);
  PutScalar(a, "model_classes", m.num_classes);
  a.write("model_width", torch::tensor(m.width, torch::kFloat64));
  a.write("model_precision", c10::IValue(m.precision));
}

std::optional<ModelShape> GetModelShape(torch::serialize::InputArchive& a) {
  torch::Tensor classes;
  if (!a.try_read("model_classes", classes)) return std::nullopt;
  ModelShape m;
  c10::IValue text;
  a.read("model_dataset", text);
  m.dataset = text.toStringRef();
  m.channels = GetScalar(a, "model_channels");
  m.image_size = GetScalar(a, "model_image_size");
  m.num_classes = classes.item<int64_t>();
  torch::Tensor width;
  a.read("model_width", width);
  m.width = width.item<double>();
  a.read("model_precision", text);
  m.precision = text.toStringRef();
  return m;
}

// 0.25 -> "0.25": as a user writes it on the command line.
std::string NumberText(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

std::string ModelShapeText(const ModelShape& m) {
  return "width " + NumberText(m.width) + ", " + std::to_string(m.num_classes) + " classes, " +
         std::to_string(m.image_size) + "x" + std::to_string(m.image_size) + "x" + std::to_string(m.channels) +
         " input (" + m.dataset + "), trained in " + m.precision;
}

void TakeModelShape(const ModelShape& saved, const std::string& path,
                    const std::function<std::string(const std::string&)>& given, TrainConfig& config) {
  // name: the setting's long flag; what: the recorded value's words; mine: the value given.
  auto take = [&](const std::string& name, const std::string& recorded, const std::string& mine,
                  const std::function<void()>& set) {
    const std::string where = given(name);
    if (!where.empty() && mine != recorded) {
      const std::string setting = where == "--" + name                 ? "--" + name + " " + mine
                                  : where.rfind("TRAINGUARD_", 0) == 0 ? where + "=" + mine
                                                                       : name + " = " + mine + " in " + where;
      const std::string fix = where == "--" + name                 ? "drop --" + name
                              : where.rfind("TRAINGUARD_", 0) == 0 ? "unset " + where
                                                                   : "remove " + name + " from " + where;
      throw ConfigError(setting + " contradicts the checkpoint " + path + ", trained with " + name + " " + recorded +
                        ": " + fix + " (predict takes the model's shape from its checkpoint)");
    }
    set();
  };
  take("dataset", saved.dataset, config.dataset, [&] { config.dataset = saved.dataset; });
  take("width", NumberText(saved.width), NumberText(config.width), [&] { config.width = saved.width; });
  take("num-classes", std::to_string(saved.num_classes), std::to_string(config.num_classes),
       [&] { config.num_classes = saved.num_classes; });
  // Only a folder's input size is a setting; the other datasets' is theirs.
  if (saved.dataset == "folder") {
    take("image-size", std::to_string(saved.image_size), std::to_string(config.image_size),
         [&] { config.image_size = saved.image_size; });
  }
  take("precision", saved.precision, config.precision, [&] { config.precision = saved.precision; });
}

int64_t SaveCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                       const TrainPosition& pos, const RunShape& shape) {
  torch::serialize::OutputArchive archive, model_part, optim_part;
  model.save(model_part);
  optimizer.save(optim_part);
  archive.write("model", model_part);
  archive.write("optimizer", optim_part);
  PutScalar(archive, "epoch", pos.epoch);
  PutScalar(archive, "step_in_epoch", pos.step_in_epoch);
  PutScalar(archive, "global_step", pos.global_step);
  PutScalar(archive, "samples_in_epoch", pos.samples_in_epoch);
  PutScalar(archive, "written_at", static_cast<int64_t>(std::time(nullptr)));
  PutScalar(archive, "world", shape.world);
  PutScalar(archive, "batch_size", shape.batch_size);
  PutScalar(archive, "train_samples", shape.train_samples);
  PutScalar(archive, "seed", shape.seed);
  PutModelShape(archive, shape.model);
  archive.write("cpu_rng", at::detail::getDefaultCPUGenerator().get_state());
  std::ostringstream payload_stream;
  archive.save_to(payload_stream);
  const std::string payload = payload_stream.str();

  std::string file(kMagic, kMagicSize);
  const uint64_t size = payload.size();
  const uint32_t crc = Crc32(payload);
  file.append(reinterpret_cast<const char*>(&size), 8);  // x86-64 and aarch64 are little-endian
  file.append(reinterpret_cast<const char*>(&crc), 4);
  file += payload;
  try {
    WriteFileAtomically(path, file);
  } catch (const IoError& e) {
    throw CheckpointError(std::string(e.what()) +
                          "; the previous checkpoint is kept. Free space "
                          "or point --checkpoint at a writable folder");
  }
  return static_cast<int64_t>(file.size());
}

namespace {

// The bytes of the checkpoint file `path`, unchecked; throws CheckpointError naming the file.
std::string ReadCheckpointFile(const std::string& path) {
  try {
    return ReadWholeFile(path);
  } catch (const IoError& e) {
    throw CheckpointError(std::string(e.what()) + "; check --checkpoint (and --resume)");
  }
}

// The verified payload of `file`, the bytes of the checkpoint file `path`; throws CheckpointError
// naming the file.
std::string PayloadOf(const std::string& path, const std::string& file) {
  const std::string refuse = "checkpoint " + path + " is unusable: ";
  const std::string fix = "; delete it or use another file";
  if (file.size() < kHeaderSize || file.compare(0, kMagicSize, kMagic) != 0) {
    throw CheckpointError(refuse + "not a trainguard checkpoint" + fix);
  }
  uint64_t size = 0;
  uint32_t crc = 0;
  std::memcpy(&size, file.data() + kMagicSize, 8);
  std::memcpy(&crc, file.data() + kMagicSize + 8, 4);
  if (file.size() - kHeaderSize != size) {
    throw CheckpointError(refuse + "truncated (" + std::to_string(file.size() - kHeaderSize) + " of " +
                          std::to_string(size) + " payload bytes)" + fix);
  }
  const std::string payload = file.substr(kHeaderSize);
  if (Crc32(payload) != crc) throw CheckpointError(refuse + "checksum mismatch (corrupted)" + fix);
  return payload;
}

// Where the model's parameters live. Checkpoints are read onto this device whatever device wrote
// them: a GPU run's checkpoint resumes on another GPU index, and `predict` reads it on a host
// without a GPU. (Reading onto another device than the parameters' would move the parameters.)
torch::Device DeviceOf(torch::nn::Module& model) {
  const auto params = model.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

// Loads the model part, refusing other shapes (Module::load would silently take them).
void LoadModelPart(const std::string& path, torch::serialize::InputArchive& model_part, torch::nn::Module& model) {
  const auto expected = ShapesOf(model);
  model.load(model_part);
  for (const auto& [name, shape] : ShapesOf(model)) {
    const auto it = expected.find(name);
    if (it != expected.end() && it->second != shape) {
      throw CheckpointError("checkpoint " + path + " does not fit this model: " + name + " has shape " +
                            ShapeText(shape) + " there but " + ShapeText(it->second) +
                            " here; use the --width, --num-classes and input size it was written with");
    }
  }
}

// On a resume: throws CheckpointError naming the first model setting in which `run` differs from
// `saved`, the shape the checkpoint `path` recorded. The precision may differ.
void RefuseOtherModel(const std::string& path, const ModelShape& saved, const ModelShape& run) {
  auto differs = [&](const std::string& setting, const std::string& there, const std::string& here) {
    if (there != here) {
      throw CheckpointError("checkpoint " + path + " holds a model trained with " + setting + " " + there +
                            ", this run has " + setting + " " + here + " (" + ModelShapeText(saved) +
                            "); resume with the same model settings, or start afresh without --resume");
    }
  };
  differs("--dataset", saved.dataset, run.dataset);
  differs("--width", NumberText(saved.width), NumberText(run.width));
  differs("--num-classes", std::to_string(saved.num_classes), std::to_string(run.num_classes));
  differs("--image-size", std::to_string(saved.image_size), std::to_string(run.image_size));
  differs("input channels", std::to_string(saved.channels), std::to_string(run.channels));
}

// LoadCheckpoint from `file`, the bytes of the checkpoint file `path`.
TrainPosition LoadCheckpointFrom(const std::string& path, const std::string& file, torch::nn::Module& model,
                                 torch::optim::Optimizer& optimizer, const RunShape& shape, CheckpointOrigin* origin) {
  const std::string payload = PayloadOf(path, file);
  const std::string refuse = "checkpoint " + path + " is unusable: ";
  const std::string fix = "; delete it or resume from another file";
  torch::serialize::InputArchive archive, model_part, optim_part;
  TrainPosition pos;
  try {
    archive.load_from(payload.data(), payload.size(), DeviceOf(model));
    const RunShape saved{GetScalar(archive, "world"),
                         GetScalar(archive, "batch_size"),
                         GetScalar(archive, "train_samples"),
                         GetScalar(archive, "seed"),
                         {}};
    auto differs = [&](const char* what, int64_t a, int64_t b) {
      if (a != b) {
        throw CheckpointError("checkpoint " + path + " was written with " + what + " " + std::to_string(a) +
                              ", this run has " + std::to_string(b) +
                              "; resume with the same settings, or start afresh without --resume");
      }
    };
    // The world size may differ: the position says which samples of the epoch are trained.
    differs("--batch-size", saved.batch_size, shape.batch_size);
    differs("training samples", saved.train_samples, shape.train_samples);
    differs("--seed", saved.seed, shape.seed);
    const std::optional<ModelShape> recorded = GetModelShape(archive);
    if (recorded && shape.model.num_classes > 0) RefuseOtherModel(path, *recorded, shape.model);
    archive.read("model", model_part);
    archive.read("optimizer", optim_part);
    LoadModelPart(path, model_part, model);
    optimizer.load(optim_part);
    torch::Tensor rng;
    archive.read("cpu_rng", rng);
    at::Generator generator = at::detail::getDefaultCPUGenerator();  // shares the default's state
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng.cpu());  // read onto the model's device with the rest
    pos.epoch = GetScalar(archive, "epoch");
    pos.step_in_epoch = GetScalar(archive, "step_in_epoch");
    pos.global_step = GetScalar(archive, "global_step");
    pos.samples_in_epoch = GetScalarOr(archive, "samples_in_epoch", pos.step_in_epoch * saved.batch_size * saved.world);
    if (origin != nullptr) *origin = {saved.world, saved.batch_size, GetScalarOr(archive, "written_at", 0)};
  } catch (const CheckpointError&) {
    throw;
  } catch (const c10::Error& e) {
    throw CheckpointError(refuse + "does not match this model (" + e.what_without_backtrace() + ")" + fix);
  }
  return pos;
}

}  // namespace

TrainPosition LoadCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                             const RunShape& shape, CheckpointOrigin* origin) {
  return LoadCheckpointFrom(path, ReadCheckpointFile(path), model, optimizer, shape, origin);
}

TrainPosition LoadCheckpointShared(ControlPlane& control, const std::string& path, torch::nn::Module& model,
                                   torch::optim::Optimizer& optimizer, const RunShape& shape,
                                   CheckpointOrigin* origin) {
  std::string file;
  RunAgreed(control, [&] {
    if (control.rank() == 0) file = ReadCheckpointFile(path);
  });
  control.Broadcast(file, 0);
  TrainPosition pos;
  RunAgreed(control, [&] { pos = LoadCheckpointFrom(path, file, model, optimizer, shape, origin); });
  return pos;
}

std::string ResumeLine(const std::string& path, const CheckpointOrigin& origin, const TrainPosition& position,
                       int64_t epoch_samples, int64_t world, int64_t batch_size) {
  std::string line = "resuming from checkpoint " + path + " written " + UtcText(origin.written_at) + ": epoch " +
                     std::to_string(position.epoch + 1) + ", step " + std::to_string(position.step_in_epoch) +
                     " of the epoch, global step " + std::to_string(position.global_step) + ", " +
                     std::to_string(position.samples_in_epoch) + " of " + std::to_string(epoch_samples) +
                     " samples of the epoch done, written by " + Ranks(origin.world);
  if (origin.world == world) return line;
  // --batch-size is per rank and stays so: raising it on a shrink to keep the global batch could
  // exceed the memory the user sized it for, turning a recoverable failure into a fatal
  // out-of-memory. The global batch follows the world size instead.
  return line + ", resumed on " + std::to_string(world) + ": the per-rank batch stays " + std::to_string(batch_size) +
         ", the global batch goes from " + std::to_string(origin.batch_size * origin.world) + " to " +
         std::to_string(batch_size * world);
}

void LoadModelWeights(const std::string& path, torch::nn::Module& model) {
  const std::string payload = PayloadOf(path, ReadCheckpointFile(path));
  torch::serialize::InputArchive archive, model_part;
  try {
    archive.load_from(payload.data(), payload.size(), DeviceOf(model));
    archive.read("model", model_part);
    LoadModelPart(path, model_part, model);
  } catch (const CheckpointError&) {
    throw;
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + path + " does not fit this model (" + e.what_without_backtrace() + ")");
  }
}

std::optional<ModelShape> ReadModelShape(const std::string& path) {
  const std::string payload = PayloadOf(path, ReadCheckpointFile(path));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(payload.data(), payload.size(), torch::kCPU);
    return GetModelShape(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + path + " is unusable: its model record cannot be read (" +
                          e.what_without_backtrace() + "); delete it or use another file");
  }
}

}  // namespace trainguard
