// Distillation losses from a frozen teacher: logits KL at temperature T (SP3: no T^2 factor;
// CoFi: times T^2), MSE for a one-logit regression head (where KL of a single logit is 0), and
// the layer losses over non-pad tokens with their teacher-layer matching:
//  * SP3: student state i to the teacher state j >= i of least MSE, all states, every batch;
//  * CoFi: teacher layers {L/4, L/2, 3L/4, L}, matched top-down to the lowest-cost student
//    layer strictly below the previous match.
// Everything stays on the device (no host sync): matches are returned as a tensor.
#pragma once
#include <torch/types.h>

#include <vector>

namespace sculpt::compress {

// batchmean KL(teacher || student) of the softened distributions.
torch::Tensor logits_kl(const torch::Tensor& student, const torch::Tensor& teacher, double temperature, bool times_t_squared);
// Per-token logits [B, T, V]: the KL of each real token (mask [B, T], 1 = real) averaged over
// those tokens, each token an example (IntelLabs' masked-LM distillation; no host sync).
torch::Tensor masked_logits_kl(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& mask, double temperature,
                               bool times_t_squared);
// The prediction loss for a head: KL for classification, MSE for a single regression output.
torch::Tensor prediction_distill(const torch::Tensor& student, const torch::Tensor& teacher, double temperature,
                                 bool times_t_squared);

struct LayerDistill {
  torch::Tensor loss;   // sum of the matched pairs' MSE
  torch::Tensor match;  // [n] long: SP3 teacher index per student state; CoFi student layer per teacher layer
};

// Mean over real tokens (mask [B, T], 1 = real) and features of (a - b)^2.
torch::Tensor masked_mse(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask);

// states [B, T, D] each, the student's already projected into the teacher's space.
LayerDistill layer_distill(const std::vector<torch::Tensor>& student, const std::vector<torch::Tensor>& teacher,
                           const torch::Tensor& mask);
// Hidden-state lists include the embedding output at 0 (L + 1 entries each). `exists` ([L],
// optional): CoFi's layer-existence filter, a student layer whose block mask is 0 is no candidate.
LayerDistill cofi_layer_distill(const std::vector<torch::Tensor>& student, const std::vector<torch::Tensor>& teacher,
                                const torch::Tensor& mask, const torch::Tensor& exists = {});
// CoFi's teacher layers for an L-layer model: round(L k / 4), k = 1..4, without repeats.
std::vector<int64_t> cofi_teacher_layers(int64_t num_layers);

}  // namespace sculpt::compress
