// The distillation loss of a student against a frozen teacher, as the recipe weighs it
// (method.md §3.6, §5.5): pred_weight x prediction loss + layer_weight x the matched layer
// losses (+ task_weight x the task loss). One function for the pruning stage (masked student)
// and the distilled fine-tune of the packed model.
#pragma once
#include <torch/types.h>

#include <vector>

#include "sculpt/models/bert.h"
#include "sculpt/models/outputs.h"
#include "sculpt/recipe/recipe.h"

namespace sculpt::train {

struct DistillTerms {
  torch::Tensor loss;   // the weighted sum, with its graph
  torch::Tensor pred;   // detached terms, for the log (device tensors: no sync)
  torch::Tensor layer;
  torch::Tensor match;  // the layer matching (compress::LayerDistill::match)
};

// `projected`: the student's hidden states already mapped into the teacher's space. `exists`
// ([L], optional): CoFi's layer-existence filter (compress::cofi_layer_distill). A head with
// start and end logits (SQuAD) distils the mean or the sum of their two KLs (d.span_kl); layer_weight 0 skips the
// layer term (no hidden states needed). Per-token logits ([B, T, V], a masked LM's every position)
// distil the mean KL over the real tokens of ATTENTION_MASK, each token an example.
DistillTerms distill_loss(const models::ModelOutput& student, const std::vector<torch::Tensor>& projected,
                          const models::ModelOutput& teacher, const torch::Tensor& attention_mask,
                          const recipe::DistillSection& d, const torch::Tensor& exists = {});

// A masked-LM batch (labels and masked_positions of the chosen tokens only) as one whose head
// reads every position: no masked_positions, labels [B T] with -100 (cross-entropy's ignored
// index) off the chosen tokens, so the task loss is unchanged and the logits are [B, T, V].
models::Batch every_token_lm_batch(const models::Batch& batch);

// The frozen teacher's logits (and hidden states) on BATCH, without a graph.
models::ModelOutput teacher_outputs(models::Bert& teacher, const models::Batch& batch, bool hidden_states = true);

}  // namespace sculpt::train
