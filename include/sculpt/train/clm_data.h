// Causal language modelling on local text (data.task clm): train_file's blocks (and dev_file's, or
// the first validation_percent held out, train/corpus_split.h) as a LabeledData, so a decoder is
// compressed without labels: every token is a next-token target, the dev metric is perplexity
// exp(mean cross-entropy over the dev blocks' next tokens), the loss Transformers' causal LMs
// return (logits[:, :-1] against ids[:, 1:]).
#pragma once
#include <memory>

#include "sculpt/train/labeled_data.h"

namespace sculpt::train {

// R's corpus with R's tokenizer, in blocks of at most MAX_POSITIONS tokens.
std::unique_ptr<LabeledData> open_clm_data(const recipe::Recipe& r, int64_t max_positions);

// The summed next-token cross-entropy of LOGITS [B, T, V] on IDS [B, T] and how many tokens it
// covers (B (T - 1)), in fp64 on LOGITS' device.
torch::Tensor next_token_loss_sum(const torch::Tensor& logits, const torch::Tensor& ids);

}  // namespace sculpt::train
