// Helpers for building error messages.
#include "trainer/core/errors.h"

#include <cstring>

namespace trainguard {

std::string ErrnoMessage(const std::string& what, int err) { return what + ": " + std::strerror(err); }

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInternal:
      return "internal";
    case ErrorKind::kConfig:
      return "config";
    case ErrorKind::kData:
      return "data";
    case ErrorKind::kCheckpoint:
      return "checkpoint";
    case ErrorKind::kComm:
      return "comm";
    case ErrorKind::kPeer:
      return "peer";
    case ErrorKind::kLabels:
      return "bad_label";
    case ErrorKind::kBatchData:
      return "batch_data";
    case ErrorKind::kDeviceAssert:
      return "device_assert";
    case ErrorKind::kNonFinite:
      return "non_finite";
    case ErrorKind::kStall:
      return "stall";
    case ErrorKind::kOutOfMemory:
      return "out_of_memory";
    case ErrorKind::kGpuFault:
      return "gpu_fault";
    case ErrorKind::kQuarantined:
      return "quarantined";
  }
  return "internal";
}

ErrorKind KindOf(const std::exception& e) {
  if (dynamic_cast<const ConfigError*>(&e)) return ErrorKind::kConfig;
  if (dynamic_cast<const DataError*>(&e)) return ErrorKind::kData;
  if (dynamic_cast<const CheckpointError*>(&e)) return ErrorKind::kCheckpoint;
  if (dynamic_cast<const CommError*>(&e)) return ErrorKind::kComm;
  if (dynamic_cast<const LabelError*>(&e)) return ErrorKind::kLabels;
  if (const auto* peer = dynamic_cast<const PeerError*>(&e)) return peer->origin();
  if (const auto* fault = dynamic_cast<const FaultError*>(&e)) return fault->kind();
  return ErrorKind::kInternal;
}

}  // namespace trainguard
