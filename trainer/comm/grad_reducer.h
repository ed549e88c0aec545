// GradReducer: sums gradients across ranks in buckets, each all-reduce started during backward
// as soon as its bucket (and every bucket before it) is complete, so communication overlaps the
// rest of backward. Buckets are launched in a fixed order on every rank. Usage per step:
//   loss.backward();  // hooks copy gradients into buckets and start all-reduces
//   reducer.Finish(); // waits, and writes the summed gradients into param.grad()
// The sum (not the mean) is what the global-count loss normalisation needs (see loss.h).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "trainer/comm/data_plane.h"

namespace trainguard {

class GradReducer {
 public:
  // Registers hooks on `params` (all must require grad and live on one device/dtype).
  GradReducer(std::vector<torch::Tensor> params, DataPlane& plane, int64_t bucket_cap_bytes);
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Completes the step's reduction: launches buckets whose gradients never arrived (filled with
  // zeros for the missing parameters), waits for all, and sets every param.grad() to the sum.
  void Finish();

  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Slot {
    size_t bucket;
    int64_t offset;  // elements into the bucket's buffer
  };
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    torch::Tensor buffer;        // flat, all gradients of the bucket
    size_t ready = 0;
    std::vector<bool> arrived;  // per entry of `params`
    std::unique_ptr<PendingReduce> pending;
  };

  void OnGradient(size_t param, const torch::Tensor& grad);
  // Parameter p's part of its bucket, viewed with p's shape and memory layout (NCHW or
  // channels-last), so gradients go in and out with plain copies, never reordered.
  torch::Tensor Region(size_t p);
  void LaunchReadyBuckets();

  std::vector<torch::Tensor> params_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  DataPlane& plane_;
};

}  // namespace trainguard
