#include "sculpt/models/config.h"

#include "sculpt/core/error.h"

namespace sculpt::models {
namespace {

template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("config.json: '{}' has the wrong type ({})", key, j[key].dump());
  }
}

}  // namespace

TransformerConfig bert_config_from_json(const nlohmann::json& j) {
  TransformerConfig c;
  c.raw = j;
  c.model_type = get_or<std::string>(j, "model_type", "bert");
  SCULPT_CHECK(c.model_type == "bert", "config.json: model_type '{}' is not a BERT model", c.model_type);
  c.vocab_size = get_or<int64_t>(j, "vocab_size", c.vocab_size);
  c.hidden_size = get_or<int64_t>(j, "hidden_size", c.hidden_size);
  c.num_layers = get_or<int64_t>(j, "num_hidden_layers", c.num_layers);
  c.num_heads = get_or<int64_t>(j, "num_attention_heads", c.num_heads);
  c.intermediate_size = get_or<int64_t>(j, "intermediate_size", c.intermediate_size);
  c.max_positions = get_or<int64_t>(j, "max_position_embeddings", c.max_positions);
  c.type_vocab_size = get_or<int64_t>(j, "type_vocab_size", c.type_vocab_size);
  c.pad_token_id = get_or<int64_t>(j, "pad_token_id", c.pad_token_id);
  c.norm_eps = get_or<double>(j, "layer_norm_eps", c.norm_eps);
  c.activation = get_or<std::string>(j, "hidden_act", c.activation);
  c.hidden_dropout = get_or<double>(j, "hidden_dropout_prob", c.hidden_dropout);
  c.attention_dropout = get_or<double>(j, "attention_probs_dropout_prob", c.attention_dropout);
  c.classifier_dropout = get_or<double>(j, "classifier_dropout", -1.0);
  c.initializer_range = get_or<double>(j, "initializer_range", c.initializer_range);
  c.problem_type = get_or<std::string>(j, "problem_type", "");
  SCULPT_CHECK(c.hidden_size % c.num_heads == 0, "config.json: hidden_size {} is not a multiple of num_attention_heads {}",
               c.hidden_size, c.num_heads);
  SCULPT_CHECK(get_or<std::string>(j, "position_embedding_type", "absolute") == "absolute",
               "config.json: only position_embedding_type 'absolute' is supported");
  SCULPT_CHECK(c.activation == "gelu" || c.activation == "relu" || c.activation == "gelu_new",
               "config.json: hidden_act '{}' is not supported (gelu, gelu_new, relu)", c.activation);
  if (j.contains("id2label") && j["id2label"].is_object()) c.num_labels = static_cast<int64_t>(j["id2label"].size());
  c.num_labels = get_or<int64_t>(j, "num_labels", c.num_labels);

  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
    arch = j["architectures"][0].get<std::string>();
  if (arch == "BertForQuestionAnswering") {
    c.head = HeadType::question_answering;
    c.with_pooler = false;  // HF builds BertModel(add_pooling_layer=False) for QA
    c.num_labels = 2;
  } else if (arch == "BertModel") {
    c.head = HeadType::none;
  } else {
    c.head = HeadType::sequence_classification;
  }
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
  } else {
    j["architectures"] = {"BertModel"};
  }
  return j;
}

}  // namespace sculpt::models
