// Distillation losses from a frozen teacher: logits KL at temperature T (SP3: no T^2 factor;
// CoFi: times T^2), MSE for a one-logit regression head (where KL of a single logit is 0), and
// the layer loss over non-pad tokens through a learned projection with SP3's dynamic matching
// (student state i to the teacher state j >= i of least MSE, recomputed every batch).
#pragma once
#include <torch/types.h>

#include <vector>

namespace sculpt::compress {

// batchmean KL(teacher || student) of the softened distributions.
torch::Tensor logits_kl(const torch::Tensor& student, const torch::Tensor& teacher, double temperature, bool times_t_squared);
// The prediction loss for a head: KL for classification, MSE for a single regression output.
torch::Tensor prediction_distill(const torch::Tensor& student, const torch::Tensor& teacher, double temperature,
                                 bool times_t_squared);

struct LayerDistill {
  torch::Tensor loss;           // sum over student states of MSE(teacher[match[i]], projected student[i])
  std::vector<int64_t> match;   // teacher index per student state
};

// states: [B, T, D] each (student already in the teacher's basis after `projection`, or
// undefined projection = identity); mask: [B, T] with 1 for real tokens.
LayerDistill layer_distill(const std::vector<torch::Tensor>& student, const std::vector<torch::Tensor>& teacher,
                           const torch::Tensor& mask, const torch::Tensor& projection = {});

}  // namespace sculpt::compress
