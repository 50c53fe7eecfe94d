#include "sculpt/models/config.h"

#include "sculpt/core/error.h"
#include "sculpt/models/config_check.h"

namespace sculpt::models {
TransformerConfig bert_config_from_json(const nlohmann::json& j, const std::string& source) {
  SCULPT_CHECK(j.is_object(), "{}: expected a JSON object", source);
  TransformerConfig c;
  c.raw = j;
  c.model_type = config_string(j, "model_type", "bert", source);
  SCULPT_CHECK(c.model_type == "bert", "{}: model_type '{}' is not a BERT model", source, c.model_type);
  c.vocab_size = config_int(j, "vocab_size", c.vocab_size, 1, kMaxVocab, source);
  c.hidden_size = config_int(j, "hidden_size", c.hidden_size, 1, kMaxWidth, source);
  c.num_layers = config_int(j, "num_hidden_layers", c.num_layers, 1, kMaxLayers, source);
  c.num_heads = config_int(j, "num_attention_heads", c.num_heads, 1, c.hidden_size, source);
  c.intermediate_size = config_int(j, "intermediate_size", c.intermediate_size, 1, kMaxFfn, source);
  c.max_positions = config_int(j, "max_position_embeddings", c.max_positions, 1, kMaxPositions, source);
  c.type_vocab_size = config_int(j, "type_vocab_size", c.type_vocab_size, 1, kMaxWidth, source);
  c.pad_token_id = config_int(j, "pad_token_id", c.pad_token_id, 0, c.vocab_size - 1, source);
  c.norm_eps = config_real(j, "layer_norm_eps", c.norm_eps, 0, 1, source);
  c.activation = config_string(j, "hidden_act", c.activation, source);
  c.hidden_dropout = config_real(j, "hidden_dropout_prob", c.hidden_dropout, 0, 1, source);
  c.attention_dropout = config_real(j, "attention_probs_dropout_prob", c.attention_dropout, 0, 1, source);
  c.classifier_dropout = config_real(j, "classifier_dropout", -1.0, 0, 1, source);
  c.initializer_range = config_real(j, "initializer_range", c.initializer_range, 0, 1e3, source);
  c.problem_type = config_string(j, "problem_type", "", source);
  SCULPT_CHECK(c.hidden_size % c.num_heads == 0, "{}: hidden_size {} is not a multiple of num_attention_heads {}", source,
               c.hidden_size, c.num_heads);
  SCULPT_CHECK(config_string(j, "position_embedding_type", "absolute", source) == "absolute",
               "{}: only position_embedding_type 'absolute' is supported", source);
  SCULPT_CHECK(c.activation == "gelu" || c.activation == "relu" || c.activation == "gelu_new",
               "{}: hidden_act '{}' is not supported (gelu, gelu_new, relu)", source, c.activation);
  if (const auto* labels = j.contains("id2label") ? &j["id2label"] : nullptr; labels && labels->is_object())
    c.num_labels = static_cast<int64_t>(labels->size());
  c.num_labels = config_int(j, "num_labels", c.num_labels, 1, kMaxLabels, source);

  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    SCULPT_CHECK(j["architectures"][0].is_string(), "{}: 'architectures' must hold class names", source);
    arch = j["architectures"][0].get<std::string>();
  }
  if (arch == "BertForQuestionAnswering") {
    c.head = HeadType::question_answering;
    c.with_pooler = false;  // HF builds BertModel(add_pooling_layer=False) for QA
    c.num_labels = 2;
  } else if (arch == "BertForMaskedLM" || arch == "BertForPreTraining") {
    // BertForPreTraining's MLM half (its NSP head and pooler are reported unused on load).
    c.head = HeadType::masked_lm;
    c.with_pooler = false;  // HF: BertModel(add_pooling_layer=False)
  } else if (arch == "BertModel") {
    c.head = HeadType::none;
  } else {
    c.head = HeadType::sequence_classification;
  }
  check_parameter_budget(c, source);
  return c;
}

nlohmann::json bert_config_to_json(const TransformerConfig& c) {
  nlohmann::json j = c.raw.is_object() ? c.raw : nlohmann::json::object();
  j["model_type"] = "bert";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_positions;
  j["type_vocab_size"] = c.type_vocab_size;
  j["pad_token_id"] = c.pad_token_id;
  j["layer_norm_eps"] = c.norm_eps;
  j["hidden_act"] = c.activation;
  j["hidden_dropout_prob"] = c.hidden_dropout;
  j["attention_probs_dropout_prob"] = c.attention_dropout;
  j["initializer_range"] = c.initializer_range;
  j["position_embedding_type"] = "absolute";
  if (c.classifier_dropout >= 0) j["classifier_dropout"] = c.classifier_dropout;
  if (!c.problem_type.empty()) j["problem_type"] = c.problem_type;
  if (c.head == HeadType::question_answering) {
    j["architectures"] = {"BertForQuestionAnswering"};
  } else if (c.head == HeadType::sequence_classification) {
    j["architectures"] = {"BertForSequenceClassification"};
    if (!j.contains("id2label") || j["id2label"].size() != static_cast<size_t>(c.num_labels)) {
      nlohmann::json id2label, label2id;
      for (int64_t i = 0; i < c.num_labels; ++i) {
        id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
        label2id["LABEL_" + std::to_string(i)] = i;
      }
      j["id2label"] = id2label;
      j["label2id"] = label2id;
    }
  } else if (c.head == HeadType::masked_lm) {
    j["architectures"] = {"BertForMaskedLM"};
  } else {
    j["architectures"] = {"BertModel"};
  }
  return j;
}

}  // namespace sculpt::models
