// Data parallelism over c10d: NCCL when the run is on CUDA (each rank on cuda:LOCAL_RANK),
// Gloo on CPU. Gradients are summed in flat buckets launched during backward (GradReducer);
// every rank then takes the same optimizer step. With one process every call is a no-op.
#pragma once
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "sculpt/core/dist_env.h"

namespace sculpt::train {

class Distributed {
 public:
  Distributed(const DistEnv& env, const torch::Device& device);
  ~Distributed();
  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  const torch::Device& device() const { return device_; }
  // The sum over ranks of `t`, on this rank's device (NCCL takes device tensors only).
  torch::Tensor all_reduce_sum(const torch::Tensor& t);
  // Rank 0's values everywhere (initial weights).
  void broadcast(const std::vector<torch::Tensor>& tensors);
  void barrier();

 private:
  friend class GradReducer;
  struct Impl;
  DistEnv env_;
  torch::Device device_;
  std::unique_ptr<Impl> impl_;
};

// Sums the trainable parameters' gradients across ranks as DDP does: in flat buckets of about
// `bucket_mb` MiB, filled in reverse parameter order (the order backward produces gradients).
// Armed for an update's last backward, each bucket's all-reduce is launched from the parameters'
// post-accumulate-grad hooks as soon as its last gradient is in, so communication overlaps the
// rest of backward. Buckets launch in the same order on every rank (a ready bucket waits for the
// ones before it), which is what keeps the collectives matched when ranks differ (a rank whose
// slice is empty runs no backward and launches everything in finish()). The last bucket always
// waits for finish(), which adds the per-update `extras` (summed in place, no collective of
// their own), launches what is left, waits and writes the sums back. A parameter without a
// gradient takes part with zeros.
class GradReducer {
 public:
  GradReducer(Distributed& dist, std::vector<torch::Tensor> params, double bucket_mb = 25);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;
  // The next backward is the update's last (earlier micro-batches only accumulate).
  void arm();
  void finish(const std::vector<torch::Tensor>& extras = {});
  size_t buckets() const { return buckets_.size(); }
  // Buckets the last finished update launched from the hooks, i.e. during backward.
  size_t launched_in_backward() const { return launched_in_backward_; }

 private:
  struct Bucket;
  void on_gradient(size_t bucket);
  void launch(Bucket& b, const std::vector<torch::Tensor>& extras);
  Distributed& dist_;
  std::vector<torch::Tensor> params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  size_t next_ = 0;  // the next bucket to launch
  bool armed_ = false;
  size_t launched_in_backward_ = 0;
};

// The process's one group, joined on first use (from the launcher's environment) and kept for
// every stage of a run: a second group on the same MASTER_PORT would race the first one's
// teardown (pruning, then its fine-tune stage). The first call's device picks the backend.
Distributed& process_group(const torch::Device& device);

// The slice of a global micro-batch this rank processes: contiguous, sizes differing by at
// most one, so that the per-rank mean losses weighted by slice size add up to the global mean.
std::vector<size_t> rank_slice(const std::vector<size_t>& batch, int rank, int world_size);

// The NCCL version LibTorch runs with ("2.28.9").
std::string nccl_version();

}  // namespace sculpt::train
