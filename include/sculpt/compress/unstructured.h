// Unstructured sparsity of weight matrices (Prune Once for All, method.md §6.2): Zhu & Gupta's
// gradual magnitude pruning schedule, and one 0/1 mask per pruned matrix.
//  * A mask is recomputed from |w| as IntelLabs' UnstructuredMagnitudePruningMethod does: the
//    k = floor(s n) smallest magnitudes of the matrix (uniform) or of all pruned matrices at once
//    (global: an exact k-th value, where their code uses a 1,024-bin histogram) go to zero,
//    keeping |w| > the k-th smallest.
//  * Their forward multiplies the weight by the mask, so a pruned weight gets no gradient; here
//    the gradient is masked by a hook (the clipped norm and Adam's moments see the same zeros)
//    and the weight itself is zeroed after every update, so exported weights are sparse as they
//    are. Pruned weights are exact zeros, so a mask never brings one back: sparsity only grows.
#pragma once
#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

#include "sculpt/io/safetensors.h"

namespace sculpt::compress {

struct GmpSchedule {
  double initial = 0, final = 0.9, exponent = 3;
  int64_t begin = 0, end = 0, every = 100;  // updates; masks recomputed at begin, begin + every, ..., and end
  // s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^e, held at s_i before t0 and s_f after t1.
  double sparsity_at(int64_t step) const;
  bool prunes_at(int64_t step) const;
  // The sparsity in force during update STEP: the schedule at the last mask update at or before it.
  double in_force_at(int64_t step) const;
};

class WeightMasks {
 public:
  WeightMasks() = default;
  // Masks of all ones over these parameters (name: HF name, for checkpoints and messages).
  explicit WeightMasks(std::vector<std::pair<std::string, torch::Tensor>> weights);
  // Masks that keep exactly the nonzero weights (pattern lock).
  static WeightMasks from_nonzeros(std::vector<std::pair<std::string, torch::Tensor>> weights);

  // New masks pruning SPARSITY of each matrix (or of all together: global) by magnitude; applied.
  void prune_to(double sparsity, bool global);
  void apply();  // w *= mask, in place, no graph
  // Gradient hooks that multiply each weight's gradient by its mask (masks change in place).
  void mask_gradients();
  double sparsity() const;  // pruned share of all masked weights (reads the device)
  int64_t size() const;     // weights under a mask
  const std::vector<std::pair<std::string, torch::Tensor>>& weights() const { return weights_; }
  const std::vector<torch::Tensor>& masks() const { return masks_; }

  // "mask.<name>" uint8 tensors; load refuses a map whose names or shapes differ.
  io::TensorMap state() const;
  void load_state(const io::TensorMap& state, const std::string& source);

 private:
  std::vector<std::pair<std::string, torch::Tensor>> weights_;
  std::vector<torch::Tensor> masks_;  // the weight's dtype and device
};

}  // namespace sculpt::compress
