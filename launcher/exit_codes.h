// Process exit codes of trainguard, one per cause (documented in docs/exit-codes.md).
#pragma once

namespace trainguard {

enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,      // a bug: an error trainguard did not expect
  kExitUsage = 2,         // bad flag, config file entry or TRAINGUARD_* variable
  kExitData = 3,          // dataset missing, unreadable or malformed
  kExitCheckpoint = 4,    // checkpoint unwritable, missing, truncated, corrupted or incompatible
  kExitComm = 5,          // MPI / NCCL / c10d failure
  kExitPeer = 6,          // another rank failed or vanished without saying why
  kExitLabels = 7,        // label validation failed (a bad label whose policy is "fail")
  kExitBatchData = 8,     // a step failed on its data: a target or index out of range
  kExitDeviceAssert = 9,  // a CUDA device-side assert
  kExitNonFinite = 10,    // a non-finite loss, gradient norm or input
  kExitStall = 11,        // a step or collective overran --step-timeout
  kExitPreempted = 12,    // a stop was requested (SIGUSR1, SIGTERM): checkpoint written; requeue with --resume auto
  kExitOutOfMemory = 13,  // the batch does not fit in GPU or host memory: lower --batch-size
  kExitGpuFault = 14,     // the GPU failed (illegal address, launch failure, ECC, off the bus): another node
  kExitQuarantined =
      15,  // samples were set aside (--bad-samples quarantine): rerun the same command with --resume auto
};

}  // namespace trainguard
