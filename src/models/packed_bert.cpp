#include "sculpt/models/packed_bert.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/config_check.h"
#include "sculpt/models/hf_model.h"
#include "sculpt/models/layers.h"

namespace fs = std::filesystem;

namespace sculpt::models {

nlohmann::json packed_config_to_json(const PackedBertConfig& c) {
  nlohmann::json j = bert_config_to_json(c.base);
  j["architectures"] = {c.base.head == HeadType::question_answering ? "SculptPackedBertForQuestionAnswering"
                                                                    : "SculptPackedBertForSequenceClassification"};
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : c.layers) {
    nlohmann::json layer = {{"attn_dim", l.attn_dim}, {"out_dim", l.out_dim}, {"heads", l.heads},
                            {"qk_dim", l.qk_dim}, {"vo_dim", l.vo_dim}, {"ffn_dim", l.ffn_dim}};
    if (l.skip_attn_norm) layer["skip_attn_norm"] = true;
    if (l.skip_ffn_norm) layer["skip_ffn_norm"] = true;
    layers.push_back(layer);
  }
  j["sculpt_packed"] = {{"format", 1},
                        {"norm", c.rms_norm ? "rms" : "layer"},
                        {"residual", c.diagonal_residual ? "diagonal" : "dense"},
                        {"norm_width", c.norm_over_kept ? "kept" : "original"},
                        {"embedding_dim", c.embedding_dim},
                        {"layers", layers}};
  return j;
}

bool is_packed_bert(const nlohmann::json& config) {
  // Packed OPT and T5 carry a block of the same name (config_check.h: layer_shapes_of).
  return config.is_object() && config.contains("sculpt_packed") && config.value("model_type", "bert") == "bert";
}

PackedBertConfig packed_config_from_json(const nlohmann::json& j, const std::string& source) {
  SCULPT_CHECK(is_packed_bert(j), "{}: no sculpt_packed block: not a packed model", source);
  nlohmann::json plain = j;
  plain.erase("sculpt_packed");
  // SculptPackedBertFor<head> names the dense head it keeps; older files say nothing else.
  std::string arch = "BertForSequenceClassification";
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() && j["architectures"][0].is_string()) {
    const std::string a = j["architectures"][0].get<std::string>(), prefix = "SculptPacked";
    SCULPT_CHECK(a.rfind(prefix, 0) == 0 && (a == prefix + "BertForSequenceClassification" || a == prefix + "BertForQuestionAnswering"),
                 "{}: architectures '{}' is not SculptPackedBertForSequenceClassification or SculptPackedBertForQuestionAnswering",
                 source, a);
    arch = a.substr(prefix.size());
  }
  plain["architectures"] = {arch};
  PackedBertConfig c;
  c.base = bert_config_from_json(plain, source);
  c.base.raw.erase("sculpt_packed");
  const auto& p = j["sculpt_packed"];
  try {
    SCULPT_CHECK(p.value("format", 0) == 1, "{}: sculpt_packed format {} is not 1", source, p.value("format", 0));
    c.rms_norm = p.at("norm").get<std::string>() == "rms";
    c.diagonal_residual = p.value("residual", "dense") == "diagonal";
    c.norm_over_kept = p.value("norm_width", "original") == "kept";
    c.embedding_dim = p.at("embedding_dim").get<int64_t>();
    for (const auto& l : p.at("layers"))
      c.layers.push_back({l.at("attn_dim").get<int64_t>(), l.at("out_dim").get<int64_t>(), l.at("heads").get<int64_t>(),
                          l.at("qk_dim").get<int64_t>(), l.at("vo_dim").get<int64_t>(), l.at("ffn_dim").get<int64_t>(),
                          l.value("skip_attn_norm", false), l.value("skip_ffn_norm", false)});
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed sculpt_packed block: {}", source, e.what());
  }
  SCULPT_CHECK(static_cast<int64_t>(c.layers.size()) == c.base.num_layers, "{}: {} packed layers for num_hidden_layers {}",
               source, c.layers.size(), c.base.num_layers);
  const int64_t D = c.base.hidden_size;
  auto in_range = [&](int64_t v, int64_t hi) { return v >= 0 && v <= hi; };
  SCULPT_CHECK(in_range(c.embedding_dim, D), "{}: embedding_dim {} outside [0, {}]", source, c.embedding_dim, D);
  int64_t width = c.embedding_dim;
  for (const auto& l : c.layers) {
    SCULPT_CHECK(!c.diagonal_residual || (l.attn_dim == width && l.out_dim == width),
                 "{}: diagonal residual maps need the same width at every site", source);
    width = l.out_dim;
  }
  for (const auto& l : c.layers)
    SCULPT_CHECK((!l.skip_attn_norm && !l.skip_ffn_norm) || c.diagonal_residual,
                 "{}: skipping a removed block's norm needs CoFi mode (diagonal residual maps)", source);
  for (const auto& l : c.layers)
    SCULPT_CHECK(in_range(l.attn_dim, D) && in_range(l.out_dim, D) && in_range(l.heads, c.base.num_heads) &&
                     in_range(l.qk_dim, c.base.head_dim()) && in_range(l.vo_dim, c.base.head_dim()) &&
                     in_range(l.ffn_dim, c.base.intermediate_size),
                 "{}: a packed layer's sizes exceed the original shape", source);
  return c;
}

torch::Tensor packed_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, int64_t width,
                          double eps, bool rms) {
  // fp32 whatever the input (bf16 under autocast), as LibTorch's layer_norm under autocast.
  const auto xf = x.to(torch::kFloat);
  const double kept = static_cast<double>(x.size(-1)), D = width > 0 ? static_cast<double>(width) : kept;
  torch::Tensor y;
  if (rms) {
    y = xf * torch::rsqrt(xf.pow(2).sum(-1, true) / D + eps);
  } else {
    // Two-pass variance over the original width: the D - kept removed dims are zeros, each
    // contributing mean² — never negative, unlike E[x²] - mean².
    auto mean = xf.sum(-1, true) / D;
    auto centred = xf - mean;
    auto var = (centred.pow(2).sum(-1, true) + (D - kept) * mean.pow(2)) / D;
    y = centred * torch::rsqrt(var + eps);
  }
  return y * weight + bias;
}

ElementwiseImpl::ElementwiseImpl(int64_t d) {
  weight = register_parameter("weight", torch::zeros({d}));
  bias = register_parameter("bias", torch::zeros({d}));
}

PackedBertLayerImpl::PackedBertLayerImpl(int64_t in, const PackedLayerDims& d, const TransformerConfig& base, bool diagonal,
                                         bool norm_over_kept)
    : dims(d), width(norm_over_kept ? 0 : base.hidden_size), eps(base.norm_eps), diagonal_residual(diagonal) {
  auto linear = [&](const char* name, int64_t in_dim, int64_t out_dim) {
    return register_module(name, Linear(in_dim, out_dim, /*with_bias=*/true, /*random_init=*/false));
  };
  auto elementwise = [&](const char* name, int64_t dim) { return register_module(name, Elementwise(dim)); };
  // Registered in the forward's order (attention, residual 1, norm 1, FFN, residual 2, norm 2):
  // the order gradient-norm clipping sums the parameters in.
  attn = register_module("attn", Attention(base, AttentionShape{d.heads, d.qk_dim, d.vo_dim}, BlockIO{in, d.attn_dim, /*random_init=*/false}));
  if (diagonal) r1 = elementwise("r1", d.attn_dim);
  else res1 = linear("res1", in, d.attn_dim);
  ln1 = elementwise("ln1", d.attn_dim);
  ffn = register_module("ffn", FeedForward(base, d.ffn_dim, BlockIO{d.attn_dim, d.out_dim, /*random_init=*/false}));
  if (diagonal) r2 = elementwise("r2", d.out_dim);
  else res2 = linear("res2", d.attn_dim, d.out_dim);
  ln2 = elementwise("ln2", d.out_dim);
  dropout = register_module("dropout", Dropout(base.hidden_dropout));
}

torch::Tensor PackedBertLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& attention_bias, bool rms) {
  // A block with no heads (or no neurons) left is its output bias.
  const auto att = attn->forward(x, attention_bias, nullptr);
  // A skipped norm: the block is removed (att is 0) and the state passes through unchanged.
  auto h1 = dims.skip_attn_norm ? x
                                : packed_norm(dropout(att) + (diagonal_residual ? torch::addcmul(r1->bias, x, r1->weight) : res1(x)),
                                              ln1->weight, ln1->bias, width, eps, rms);
  const auto f = ffn->forward(h1);
  return dims.skip_ffn_norm ? h1
                            : packed_norm(dropout(f) + (diagonal_residual ? torch::addcmul(r2->bias, h1, r2->weight) : res2(h1)),
                                          ln2->weight, ln2->bias, width, eps, rms);
}

PackedBertImpl::PackedBertImpl(PackedBertConfig c) : config(std::move(c)) {
  const auto& b = config.base;
  const int64_t d0 = config.embedding_dim;
  tok = register_parameter("tok", torch::zeros({b.vocab_size, d0}));
  pos = register_parameter("pos", torch::zeros({b.max_positions, d0}));
  type = register_parameter("type", torch::zeros({b.type_vocab_size, d0}));
  ln0_w = register_parameter("ln0_w", torch::ones({d0}));
  ln0_b = register_parameter("ln0_b", torch::zeros({d0}));
  layers = register_module("layers", torch::nn::ModuleList());
  int64_t d_in = d0;
  for (const auto& l : config.layers) {
    layers->push_back(PackedBertLayer(d_in, l, b, config.diagonal_residual, config.norm_over_kept));
    d_in = l.out_dim;
  }
  heads.build(*this, b, d_in);
  dropout = register_module("dropout", Dropout(b.hidden_dropout));
}

ModelOutput PackedBertImpl::forward(const Batch& batch, const ForwardOptions& options) {
  const auto& b = config.base;
  ModelOutput out;
  auto mask = batch.attention_mask.defined() ? batch.attention_mask : torch::ones_like(batch.input_ids);
  auto types = batch.token_type_ids.defined() ? batch.token_type_ids : torch::zeros_like(batch.input_ids);
  auto positions = torch::arange(batch.input_ids.size(1), batch.input_ids.options());
  auto e = torch::embedding(tok, batch.input_ids) + torch::embedding(type, types) + torch::embedding(pos, positions).unsqueeze(0);
  auto x = dropout(packed_norm(e, ln0_w, ln0_b, config.norm_over_kept ? 0 : b.hidden_size, b.norm_eps, config.rms_norm));
  auto bias = extended_attention_mask(mask, x.scalar_type());
  if (options.hidden_states) out.hidden_states.push_back(x);
  for (const auto& m : *layers) {
    x = m->as<PackedBertLayer>()->forward(x, bias, config.rms_norm);
    if (options.hidden_states) out.hidden_states.push_back(x);
  }
  heads.forward(b, x, batch, out);
  return out;
}

KeyMap packed_bert_key_map(const PackedBertConfig& c) {
  KeyMap map;
  auto add = [&](const std::string& hf, const std::string& internal) { map.push_back({hf, internal}); };
  add("bert.embeddings.word_embeddings.weight", "tok");
  add("bert.embeddings.position_embeddings.weight", "pos");
  add("bert.embeddings.token_type_embeddings.weight", "type");
  add("bert.embeddings.LayerNorm.weight", "ln0_w");
  add("bert.embeddings.LayerNorm.bias", "ln0_b");
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const std::string hf = fmt::format("bert.encoder.layer.{}.", i), in = fmt::format("layers.{}.", i);
    const std::string r1 = c.diagonal_residual ? "r1" : "res1", r2 = c.diagonal_residual ? "r2" : "res2";
    const std::vector<std::pair<std::string, std::string>> pairs = {
        {"attention.self.query.weight", "attn.q.weight"},   {"attention.self.query.bias", "attn.q.bias"},
        {"attention.self.key.weight", "attn.k.weight"},     {"attention.self.key.bias", "attn.k.bias"},
        {"attention.self.value.weight", "attn.v.weight"},   {"attention.self.value.bias", "attn.v.bias"},
        {"attention.output.dense.weight", "attn.o.weight"}, {"attention.output.dense.bias", "attn.o.bias"},
        {"attention.residual.weight", r1 + ".weight"}, {"attention.residual.bias", r1 + ".bias"},
        {"attention.output.LayerNorm.weight", "ln1.weight"}, {"attention.output.LayerNorm.bias", "ln1.bias"},
        {"intermediate.dense.weight", "ffn.fc1.weight"},   {"intermediate.dense.bias", "ffn.fc1.bias"},
        {"output.dense.weight", "ffn.fc2.weight"},         {"output.dense.bias", "ffn.fc2.bias"},
        {"output.residual.weight", r2 + ".weight"},    {"output.residual.bias", r2 + ".bias"},
        {"output.LayerNorm.weight", "ln2.weight"},     {"output.LayerNorm.bias", "ln2.bias"}};
    for (const auto& [h, n] : pairs) add(hf + h, in + n);
  }
  for (const auto& [hf, in] : {std::pair<std::string, std::string>{"bert.pooler.dense", "pooler"}, {"classifier", "classifier"}, {"qa_outputs", "qa"}}) {
    const bool present = in == "pooler" ? has_pooler(c.base) : in == "classifier" ? c.base.head == HeadType::sequence_classification
                                                                                 : c.base.head == HeadType::question_answering;
    if (present) add(hf + ".weight", in + ".weight"), add(hf + ".bias", in + ".bias");
  }
  return map;
}

PackedBert load_packed_bert(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  auto config = packed_config_from_json(io::read_json(path), path);
  check_config_against_weights(config.base, dir, path, /*packed=*/true);
  PackedBert model(config);
  load_checkpoint(*model, packed_bert_key_map(model->config), io::load_hf_weights(dir), dir, /*strict=*/true);
  return model;
}

void save_packed_bert(PackedBert& model, const std::string& dir) {
  save_hf(*model, packed_bert_key_map(model->config), packed_config_to_json(model->config), dir);
}

PackedCounts count_packed(const PackedBertConfig& c) {
  PackedCounts n;
  const auto& b = c.base;
  int64_t d_in = c.embedding_dim;
  for (const auto& l : c.layers) {
    const int64_t qk = l.heads * l.qk_dim, vo = l.heads * l.vo_dim;
    const int64_t residual = c.diagonal_residual ? l.attn_dim + l.out_dim : l.attn_dim * d_in + l.out_dim * l.attn_dim;
    n.residual += residual;
    n.matrices += 2 * qk * d_in + vo * d_in + l.attn_dim * vo + l.ffn_dim * l.attn_dim + l.out_dim * l.ffn_dim + residual;
    // Biases: q, k, v, o, both residual maps, fc1, fc2; LayerNorm weight and bias twice.
    n.encoder_parameters += 2 * qk + vo + 2 * l.attn_dim + l.ffn_dim + 2 * l.out_dim + 2 * (l.attn_dim + l.out_dim);
    d_in = l.out_dim;
  }
  n.encoder_parameters += n.matrices;
  const int64_t embeddings = (b.vocab_size + b.max_positions + b.type_vocab_size + 2) * c.embedding_dim;
  const int64_t heads = b.head == HeadType::question_answering ? (d_in + 1) * 2                               // span head
                                                                : (d_in + 1) * b.hidden_size + (b.hidden_size + 1) * b.num_labels;  // pooler, classifier
  n.total_parameters = embeddings + n.encoder_parameters + heads;
  return n;
}

}  // namespace sculpt::models
