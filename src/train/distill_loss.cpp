#include "sculpt/train/distill_loss.h"

#include <torch/torch.h>

#include "sculpt/compress/distill.h"

namespace sculpt::train {

DistillTerms distill_loss(const models::ModelOutput& student, const std::vector<torch::Tensor>& projected,
                          const models::ModelOutput& teacher, const torch::Tensor& attention_mask,
                          const recipe::DistillSection& d, const torch::Tensor& exists) {
  torch::Tensor pred;
  if (student.start_logits.defined()) {
    pred = compress::prediction_distill(student.start_logits, teacher.start_logits, d.temperature, d.t_squared) +
           compress::prediction_distill(student.end_logits, teacher.end_logits, d.temperature, d.t_squared);
    if (d.span_kl == "mean") pred = pred / 2;
  } else if (student.logits.dim() == 3) {
    pred = compress::masked_logits_kl(student.logits, teacher.logits, attention_mask, d.temperature, d.t_squared);
  } else {
    pred = compress::prediction_distill(student.logits, teacher.logits, d.temperature, d.t_squared);
  }
  auto loss = d.pred_weight * pred;
  compress::LayerDistill layer;
  if (d.layer_weight > 0) {
    layer = d.layer_map == "cofi" ? compress::cofi_layer_distill(projected, teacher.hidden_states, attention_mask, exists)
                                  : compress::layer_distill(projected, teacher.hidden_states, attention_mask);
    loss = loss + d.layer_weight * layer.loss;
  }
  if (d.task_weight > 0) loss = loss + d.task_weight * student.loss;
  return {loss, pred.detach(), layer.loss.defined() ? layer.loss.detach() : layer.loss, layer.match};
}

models::Batch every_token_lm_batch(const models::Batch& batch) {
  models::Batch b = batch;
  b.masked_positions = torch::Tensor();
  b.labels = torch::full({batch.input_ids.numel()}, -100, batch.labels.options());
  b.labels.index_copy_(0, batch.masked_positions, batch.labels);
  return b;
}

models::ModelOutput teacher_outputs(models::Bert& teacher, const models::Batch& batch, bool hidden_states) {
  torch::NoGradGuard no_grad;
  return teacher->forward(batch, {hidden_states, false});
}

}  // namespace sculpt::train
