#include "sculpt/models/encoder_head.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"

namespace sculpt::models {
namespace {

// nn.Linear's init divides by the input width: build at width >= 1, then give it the real one.
models::Linear linear(torch::nn::Module& owner, const char* name, int64_t in, int64_t out) {
  auto l = owner.register_module(name, models::Linear(std::max<int64_t>(in, 1), out));
  if (in == 0) l->weight.set_data(torch::zeros({out, 0}));
  return l;
}

}  // namespace

bool has_pooler(const TransformerConfig& c) {
  return c.with_pooler && c.head != HeadType::question_answering;
}

void EncoderHeads::build(torch::nn::Module& owner, const TransformerConfig& c, int64_t in_width) {
  if (has_pooler(c)) pooler = linear(owner, "pooler", in_width, c.hidden_size);
  const double p = c.classifier_dropout >= 0 ? c.classifier_dropout : c.hidden_dropout;
  classifier_dropout = owner.register_module("classifier_dropout", Dropout(p));
  if (c.head == HeadType::sequence_classification) classifier = linear(owner, "classifier", c.hidden_size, c.num_labels);
  if (c.head == HeadType::question_answering) qa = linear(owner, "qa", in_width, 2);
}

void EncoderHeads::forward(const TransformerConfig& c, const torch::Tensor& x, const Batch& batch, ModelOutput& out) {
  if (qa) {
    auto parts = qa(x).split(1, -1);  // [B, T, 2]
    out.start_logits = parts[0].squeeze(-1).contiguous();
    out.end_logits = parts[1].squeeze(-1).contiguous();
    if (batch.start_positions.defined() && batch.end_positions.defined())
      out.loss = span_loss(out.start_logits, out.end_logits, batch.start_positions, batch.end_positions);
    return;
  }
  if (pooler) out.pooler_output = torch::tanh(pooler(x.select(1, 0)));
  if (classifier) {
    SCULPT_CHECK(pooler, "sequence classification needs the pooler");
    out.logits = classifier(classifier_dropout(out.pooler_output));
    if (batch.labels.defined()) out.loss = classification_loss(c, out.logits, batch.labels);
  }
}

torch::Tensor classification_loss(const TransformerConfig& c, const torch::Tensor& logits, const torch::Tensor& labels) {
  if (c.is_regression()) return torch::mse_loss(logits.squeeze(), labels.squeeze().to(logits.scalar_type()));
  return torch::nn::functional::cross_entropy(logits.view({-1, c.num_labels}), labels.view(-1).to(torch::kLong));
}

torch::Tensor span_loss(const torch::Tensor& start_logits, const torch::Tensor& end_logits, const torch::Tensor& start_positions,
                        const torch::Tensor& end_positions) {
  // As HF: positions outside the sequence are clamped to T and ignored.
  const int64_t ignored = start_logits.size(1);
  auto sp = start_positions.view(-1).clamp(0, ignored), ep = end_positions.view(-1).clamp(0, ignored);
  auto opts = torch::nn::functional::CrossEntropyFuncOptions().ignore_index(ignored);
  return (torch::nn::functional::cross_entropy(start_logits, sp, opts) + torch::nn::functional::cross_entropy(end_logits, ep, opts)) / 2;
}

}  // namespace sculpt::models
