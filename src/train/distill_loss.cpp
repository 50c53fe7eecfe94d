#include "sculpt/train/distill_loss.h"

#include <torch/torch.h>

#include "sculpt/compress/distill.h"

namespace sculpt::train {

DistillTerms distill_loss(const models::ModelOutput& student, const std::vector<torch::Tensor>& projected,
                          const models::ModelOutput& teacher, const torch::Tensor& attention_mask,
                          const recipe::DistillSection& d, const torch::Tensor& exists) {
  auto pred = compress::prediction_distill(student.logits, teacher.logits, d.temperature, d.t_squared);
  auto layer = d.layer_map == "cofi" ? compress::cofi_layer_distill(projected, teacher.hidden_states, attention_mask, exists)
                                     : compress::layer_distill(projected, teacher.hidden_states, attention_mask);
  auto loss = d.pred_weight * pred + d.layer_weight * layer.loss;
  if (d.task_weight > 0) loss = loss + d.task_weight * student.loss;
  return {loss, pred.detach(), layer.loss.detach(), layer.match};
}

models::ModelOutput teacher_outputs(models::Bert& teacher, const models::Batch& batch) {
  torch::NoGradGuard no_grad;
  return teacher->forward(batch, {true, false});
}

}  // namespace sculpt::train
