// Typed errors of trainguard. Each kind maps to one process exit code in the launcher;
// a message names the file, flag or sample at fault and ends with what to do about it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace trainguard {

// Base of every error trainguard raises on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A flag, config file entry or environment variable has a bad value.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A dataset file is missing, unreadable or malformed.
class DataError : public Error {
 public:
  using Error::Error;
};

// A checkpoint cannot be written, or is missing, truncated, corrupted or incompatible.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

// Label validation failed: some labels are bad and the policy for their kind is "fail".
class LabelError : public Error {
 public:
  using Error::Error;
};

// A library call (MPI, NCCL, c10d) failed.
class CommError : public Error {
 public:
  using Error::Error;
};

// What kind of failure an error is; travels between ranks so that every rank of a job that
// stops on an agreed failure reports the same cause (and exit code).
enum class ErrorKind {
  kInternal,
  kConfig,
  kData,
  kCheckpoint,
  kComm,
  kPeer,
  kLabels,
  kBatchData,     // a step failed on its data: a target or index out of range
  kDeviceAssert,  // a CUDA device-side assert
  kNonFinite,     // a non-finite loss, gradient norm or input
  kStall,         // a step or collective overran its deadline
  kOutOfMemory,   // an allocation failed: the batch does not fit (GPU or host memory)
  kGpuFault,      // the GPU failed: an illegal address, a launch failure, an uncorrectable ECC error
  kQuarantined,   // not a failure: samples were set aside and the run must be rerun to go on without them
};

// A training step failed; `kind` is one of the step kinds above.
class FaultError : public Error {
 public:
  // `step`: the global step it happened at (0: between steps).
  FaultError(ErrorKind kind, const std::string& what, int64_t step = 0) : Error(what), kind_(kind), step_(step) {}
  ErrorKind kind() const { return kind_; }
  int64_t step() const { return step_; }

 private:
  ErrorKind kind_;
  int64_t step_;
};

// Another rank failed; this rank stops with it. `origin` is the kind of the failure there.
class PeerError : public Error {
 public:
  PeerError(const std::string& what, ErrorKind origin = ErrorKind::kPeer) : Error(what), origin_(origin) {}
  ErrorKind origin() const { return origin_; }

 private:
  ErrorKind origin_;
};

// "internal", "config", "data", "checkpoint", "comm", "peer", "bad_label", "batch_data",
// "device_assert", "non_finite", "stall", "out_of_memory", "gpu_fault", "quarantined": in
// bundles, logs and metrics.
const char* ErrorKindName(ErrorKind kind);

// The kind of any exception: one of ours by type, anything else is internal.
ErrorKind KindOf(const std::exception& e);

// Formats errno as "<what>: <strerror>".
std::string ErrnoMessage(const std::string& what, int err);

}  // namespace trainguard
