#include "sculpt/models/layers.h"

#include <torch/torch.h>

#include <cmath>

#include "sculpt/core/error.h"

namespace sculpt::models {

namespace F = torch::nn::functional;

torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  fail("unknown activation '{}'", name);
}

torch::Tensor extended_attention_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype) {
  auto m = attention_mask.to(dtype).unsqueeze(1).unsqueeze(2);  // [B, 1, 1, T]
  double lowest = dtype == torch::kFloat64 ? std::numeric_limits<double>::lowest()
                  : dtype == torch::kBFloat16 ? -3.3895313892515355e38
                  : dtype == torch::kFloat16  ? -65504.0
                                              : static_cast<double>(std::numeric_limits<float>::lowest());
  return (1.0 - m) * lowest;
}

AttentionImpl::AttentionImpl(const TransformerConfig& c) : num_heads(c.num_heads), head_dim(c.head_dim()) {
  const int64_t d = c.hidden_size, inner = num_heads * head_dim;
  q = register_module("q", torch::nn::Linear(d, inner));
  k = register_module("k", torch::nn::Linear(d, inner));
  v = register_module("v", torch::nn::Linear(d, inner));
  o = register_module("o", torch::nn::Linear(inner, d));
  attn_dropout = register_module("attn_dropout", torch::nn::Dropout(c.attention_dropout));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* probs) {
  const int64_t B = x.size(0), T = x.size(1);
  auto split = [&](const torch::Tensor& t) { return t.view({B, T, num_heads, head_dim}).transpose(1, 2); };
  auto qh = split(q(x)), kh = split(k(x)), vh = split(v(x));
  // Same operation order as HF (matmul, then divide, then add the mask) for bitwise-close parity.
  auto scores = torch::matmul(qh, kh.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim));
  if (bias.defined()) scores = scores + bias;
  auto p = torch::softmax(scores, -1);
  if (probs) *probs = p;
  auto ctx = torch::matmul(attn_dropout(p), vh).transpose(1, 2).contiguous().view({B, T, num_heads * head_dim});
  return o(ctx);
}

FeedForwardImpl::FeedForwardImpl(const TransformerConfig& c) : act(c.activation) {
  fc1 = register_module("fc1", torch::nn::Linear(c.hidden_size, c.intermediate_size));
  fc2 = register_module("fc2", torch::nn::Linear(c.intermediate_size, c.hidden_size));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) { return fc2(activation(act, fc1(x))); }

static torch::nn::LayerNorm make_norm(const TransformerConfig& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.norm_eps));
}

TransformerLayerImpl::TransformerLayerImpl(const TransformerConfig& c) : pre_norm(c.pre_norm) {
  attn = register_module("attn", Attention(c));
  attn_norm = register_module("attn_norm", make_norm(c));
  ffn = register_module("ffn", FeedForward(c));
  ffn_norm = register_module("ffn_norm", make_norm(c));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout));
}

torch::Tensor TransformerLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* probs) {
  if (pre_norm) {
    auto h = x + dropout(attn(attn_norm(x), bias, probs));
    return h + dropout(ffn(ffn_norm(h)));
  }
  auto h = attn_norm(x + dropout(attn(x, bias, probs)));
  return ffn_norm(h + dropout(ffn(h)));
}

EmbeddingsImpl::EmbeddingsImpl(const TransformerConfig& c) {
  tok = register_module("tok", torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size)
                                                        .padding_idx(c.pad_token_id)));
  pos = register_module("pos", torch::nn::Embedding(c.max_positions, c.hidden_size));
  type = register_module("type", torch::nn::Embedding(c.type_vocab_size, c.hidden_size));
  norm = register_module("norm", make_norm(c));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout));
}

torch::Tensor EmbeddingsImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids) {
  const int64_t T = input_ids.size(1);
  SCULPT_CHECK(T <= pos->weight.size(0), "sequence length {} exceeds max_position_embeddings {}", T,
               pos->weight.size(0));
  auto positions = torch::arange(T, input_ids.options()).unsqueeze(0);
  auto types = token_type_ids.defined() ? token_type_ids : torch::zeros_like(input_ids);
  auto e = tok(input_ids) + type(types);
  e = e + pos(positions);
  return dropout(norm(e));
}

}  // namespace sculpt::models
