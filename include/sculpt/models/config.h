// TransformerConfig: the one config type every family maps its config.json onto.
// Families differ in small, named places (norm placement, activation, positions, heads).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace sculpt::models {

enum class HeadType { none, sequence_classification, question_answering };

struct TransformerConfig {
  std::string model_type = "bert";
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_positions = 512;
  int64_t type_vocab_size = 2;
  int64_t pad_token_id = 0;
  double norm_eps = 1e-12;
  std::string activation = "gelu";  // gelu (erf) | gelu_new (tanh) | relu
  bool pre_norm = false;            // BERT: post-norm residual blocks
  double hidden_dropout = 0.1;
  double attention_dropout = 0.1;
  double classifier_dropout = -1;   // < 0: use hidden_dropout, as HF does for null
  double initializer_range = 0.02;

  HeadType head = HeadType::sequence_classification;
  bool with_pooler = true;
  int64_t num_labels = 2;
  std::string problem_type;  // "" (infer) | regression | single_label_classification

  nlohmann::json raw;  // the config.json this came from, written back on export

  int64_t head_dim() const { return hidden_size / num_heads; }
  bool is_regression() const {
    return problem_type == "regression" || (problem_type.empty() && num_labels == 1);
  }
};

// Parse a BERT config.json (HF names). The head comes from `architectures` unless given.
TransformerConfig bert_config_from_json(const nlohmann::json& j);
// The config.json to write beside exported weights (HF names, `raw` keys kept).
nlohmann::json bert_config_to_json(const TransformerConfig& c);

}  // namespace sculpt::models
