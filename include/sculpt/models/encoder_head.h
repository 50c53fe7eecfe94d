// The task heads a BERT-shaped encoder ends with — pooler + classifier (or regressor) and the
// question-answering span head — with Hugging Face's losses. One implementation for the dense
// BERT, the SP3/CoFi student and the packed model: they differ only in the width of the last
// residual site that the head reads (`in_width`), which packing shrinks.
#pragma once
#include <torch/nn.h>

#include "sculpt/models/config.h"
#include "sculpt/models/layers.h"
#include "sculpt/models/outputs.h"

namespace sculpt::models {

struct EncoderHeads {
  // Registers the head that C asks for on OWNER under the names every checkpoint and key map
  // uses (pooler, classifier_dropout, classifier, qa). An in_width of 0 (a last site pruned to
  // nothing) leaves the pooler or span head only its bias.
  void build(torch::nn::Module& owner, const TransformerConfig& c, int64_t in_width);
  // The head's outputs on the final states X [B, T, in_width], and the loss when BATCH has labels.
  void forward(const TransformerConfig& c, const torch::Tensor& x, const Batch& batch, ModelOutput& out);

  models::Linear pooler{nullptr}, classifier{nullptr}, qa{nullptr};
  Dropout classifier_dropout{nullptr};
};

// Whether C has a pooler (HF: BertModel(add_pooling_layer=False) for question answering and MLM).
bool has_pooler(const TransformerConfig& c);

// HF's losses: MSE for one regression output, cross-entropy otherwise; the span loss is the mean
// of the start and end cross-entropies with positions outside the sequence ignored.
torch::Tensor classification_loss(const TransformerConfig& c, const torch::Tensor& logits, const torch::Tensor& labels);
torch::Tensor span_loss(const torch::Tensor& start_logits, const torch::Tensor& end_logits, const torch::Tensor& start_positions,
                        const torch::Tensor& end_positions);

}  // namespace sculpt::models
