// A tiny BERT teacher and batch shared by the SP3 tests (student, PCA, packing, pruning).
#pragma once
#include "sculpt/models/bert.h"
#include "test_util.h"

namespace sculpt::testing {

// 2 layers, D = 16, 4 heads of 4, F = 24, 3 labels (or the span head of question answering),
// with non-trivial LayerNorm affines so that the site folding is really exercised.
inline models::Bert tiny_teacher(int64_t num_labels = 3, const std::string& architecture = "BertForSequenceClassification") {
  auto c = models::bert_config_from_json({{"model_type", "bert"}, {"vocab_size", 60}, {"hidden_size", 16},
                                          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"intermediate_size", 24},
                                          {"max_position_embeddings", 20}, {"architectures", {architecture}}});
  c.num_labels = num_labels;
  c.initializer_range = 0.3;  // sublayers that matter next to the residual stream
  torch::manual_seed(5);
  models::Bert t(c);
  t->init_weights();
  torch::NoGradGuard g;
  for (auto& p : t->named_parameters())
    if (p.key().find("norm") != std::string::npos) p.value().add_(torch::randn_like(p.value()) * 0.3);
  t->eval();
  return t;
}

// Three sequences of 9 tokens, the last one padded after 6.
inline models::Batch tiny_batch() {
  models::Batch b;
  b.input_ids = torch::randint(5, 60, {3, 9});
  b.attention_mask = torch::ones({3, 9}, torch::kLong);
  b.attention_mask[2].narrow(0, 6, 3).fill_(0);
  b.labels = torch::tensor({0, 2, 1});
  return b;
}

}  // namespace sculpt::testing
