#include "sculpt/models/bert.h"

#include <torch/torch.h>

#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/io/files.h"
#include "sculpt/models/config_check.h"
#include "sculpt/models/hf_model.h"

namespace fs = std::filesystem;

namespace sculpt::models {

BertImpl::BertImpl(TransformerConfig c) : config(std::move(c)) {
  embed = register_module("embed", Embeddings(config));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_layers; ++i) layers->push_back(TransformerLayer(config));
  heads.build(*this, config, config.hidden_size);
  if (config.head == HeadType::masked_lm) {
    mlm_transform = register_module("mlm_transform", models::Linear(config.hidden_size, config.hidden_size));
    mlm_norm = register_module("mlm_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.hidden_size}).eps(config.norm_eps)));
    mlm_bias = register_parameter("mlm_bias", torch::zeros({config.vocab_size}));
  }
}

void BertImpl::init_weights() {
  init_normal(*this, config.initializer_range);
  torch::NoGradGuard no_grad;
  embed->tok->weight[config.pad_token_id].zero_();
}

ModelOutput BertImpl::forward(const Batch& batch, const ForwardOptions& options) {
  ModelOutput out;
  auto mask = batch.attention_mask.defined() ? batch.attention_mask : torch::ones_like(batch.input_ids);
  auto x = embed(batch.input_ids, batch.token_type_ids);
  auto bias = extended_attention_mask(mask, x.scalar_type());
  if (options.hidden_states) out.hidden_states.push_back(x);
  for (const auto& module : *layers) {
    torch::Tensor probs;
    x = module->as<TransformerLayer>()->forward(x, bias, options.attentions ? &probs : nullptr);
    if (options.hidden_states) out.hidden_states.push_back(x);
    if (options.attentions) out.attentions.push_back(probs);
  }
  if (config.head == HeadType::masked_lm) {
    // Only the masked rows go through the head when the batch names them: the vocabulary
    // projection is most of an MLM step's cost on a small encoder.
    const int64_t H = config.hidden_size;
    auto h = batch.masked_positions.defined() ? x.reshape({-1, H}).index_select(0, batch.masked_positions) : x;
    h = mlm_norm(activation(config.activation, mlm_transform(h)));
    out.logits = at::linear(h, embed->tok->weight, mlm_bias);
    if (batch.labels.defined())  // HF: CrossEntropyLoss (ignore_index -100) over every position
      out.loss = torch::nn::functional::cross_entropy(out.logits.reshape({-1, config.vocab_size}),
                                                      batch.labels.reshape(-1).to(torch::kLong));
    return out;
  }
  heads.forward(config, x, batch, out);
  return out;
}

KeyMap bert_key_map(const TransformerConfig& c) {
  KeyMap map;
  auto add = [&](const std::string& hf, const std::string& internal, bool with_bias = true) {
    map.push_back({hf + ".weight", internal + ".weight"});
    if (with_bias) map.push_back({hf + ".bias", internal + ".bias"});
  };
  add("bert.embeddings.word_embeddings", "embed.tok", false);
  add("bert.embeddings.position_embeddings", "embed.pos", false);
  add("bert.embeddings.token_type_embeddings", "embed.type", false);
  add("bert.embeddings.LayerNorm", "embed.norm");
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string hf = fmt::format("bert.encoder.layer.{}.", i), in = fmt::format("layers.{}.", i);
    add(hf + "attention.self.query", in + "attn.q");
    add(hf + "attention.self.key", in + "attn.k");
    add(hf + "attention.self.value", in + "attn.v");
    add(hf + "attention.output.dense", in + "attn.o");
    add(hf + "attention.output.LayerNorm", in + "attn_norm");
    add(hf + "intermediate.dense", in + "ffn.fc1");
    add(hf + "output.dense", in + "ffn.fc2");
    add(hf + "output.LayerNorm", in + "ffn_norm");
  }
  if (has_pooler(c)) add("bert.pooler.dense", "pooler");
  if (c.head == HeadType::sequence_classification) add("classifier", "classifier");
  if (c.head == HeadType::question_answering) add("qa_outputs", "qa");
  if (c.head == HeadType::masked_lm) {  // HF's named_parameters order: the head's bias, then the transform
    map.push_back({"cls.predictions.bias", "mlm_bias"});
    add("cls.predictions.transform.dense", "mlm_transform");
    add("cls.predictions.transform.LayerNorm", "mlm_norm");
    map.push_back({"cls.predictions.decoder.weight", "embed.tok.weight", true});  // tied duplicates
    map.push_back({"cls.predictions.decoder.bias", "mlm_bias", true});
  }
  return map;
}

namespace {

// Old TF-converted checkpoints name LayerNorm parameters gamma/beta and some store a bare
// BertModel without the "bert." prefix; HF renames both on load, so do we.
io::TensorMap normalize_bert_keys(io::TensorMap weights) {
  bool has_prefix = false;
  for (const auto& kv : weights) has_prefix |= kv.first.rfind("bert.", 0) == 0;
  io::TensorMap out;
  for (auto& [key, value] : weights) {
    std::string k = key;
    if (k.size() > 6 && k.compare(k.size() - 6, 6, ".gamma") == 0) k = k.substr(0, k.size() - 6) + ".weight";
    if (k.size() > 5 && k.compare(k.size() - 5, 5, ".beta") == 0) k = k.substr(0, k.size() - 5) + ".bias";
    if (!has_prefix && (k.rfind("embeddings.", 0) == 0 || k.rfind("encoder.", 0) == 0 || k.rfind("pooler.", 0) == 0))
      k = "bert." + k;
    out[k] = value;
  }
  return out;
}

}  // namespace

LoadedBert load_bert(const std::string& dir, bool strict, io::WeightFormat prefer,
                     const TransformerConfig* override_config) {
  const std::string path = (fs::path(dir) / "config.json").string();
  TransformerConfig config = override_config ? *override_config : bert_config_from_json(io::read_json(path), path);
  check_config_against_weights(config, dir, path);  // before the model is allocated
  LoadedBert out{Bert(config), {}};
  out.model->init_weights();
  auto weights = normalize_bert_keys(io::load_hf_weights(dir, prefer));
  // Non-persistent buffers that older checkpoints sometimes stored.
  std::vector<std::string> ignorable = {"bert.embeddings.position_ids", "bert.embeddings.token_type_ids"};
  if (config.head == HeadType::masked_lm)  // a BertForPreTraining checkpoint's NSP half
    for (const char* k : {"cls.seq_relationship.weight", "cls.seq_relationship.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"})
      ignorable.push_back(k);
  out.report = load_checkpoint(*out.model, bert_key_map(config), weights, dir, strict, ignorable);
  return out;
}

void save_bert(Bert& model, const std::string& dir) {
  save_hf(*model, bert_key_map(model->config), bert_config_to_json(model->config), dir);
}

}  // namespace sculpt::models
