// Data parallelism over c10d: NCCL when the run is on CUDA (each rank on cuda:LOCAL_RANK),
// Gloo on CPU. Gradients are summed in flat buckets after backward; every rank then takes the
// same optimizer step. With one process every call is a no-op.
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
  // Sum every parameter's gradient across ranks, in buckets of about `bucket_mb` MiB, and the
  // `extras` (small per-update statistics, summed in place) in the last bucket: no collective
  // of their own.
  void all_reduce_gradients(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& extras = {},
                            double bucket_mb = 25);
  // The sum over ranks of `t`, on this rank's device (NCCL takes device tensors only).
  torch::Tensor all_reduce_sum(const torch::Tensor& t);
  // Rank 0's values everywhere (initial weights).
  void broadcast(const std::vector<torch::Tensor>& tensors);
  void barrier();

 private:
  struct Impl;
  DistEnv env_;
  torch::Device device_;
  std::unique_ptr<Impl> impl_;
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
