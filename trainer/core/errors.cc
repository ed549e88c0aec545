// Helpers for building error messages.
#include "trainer/core/errors.h"

#include <cstring>

namespace trainguard {

std::string ErrnoMessage(const std::string& what, int err) { return what + ": " + std::strerror(err); }

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
