#include "sculpt/models/layers.h"

#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <mutex>

#include "sculpt/core/error.h"

namespace sculpt::models {

namespace F = torch::nn::functional;

torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  fail("unknown activation '{}'", name);
}

double mask_min(torch::ScalarType dtype) {
  return dtype == torch::kFloat64    ? std::numeric_limits<double>::lowest()
         : dtype == torch::kBFloat16 ? -3.3895313892515355e38
         : dtype == torch::kFloat16  ? -65504.0
                                     : static_cast<double>(std::numeric_limits<float>::lowest());
}

torch::Tensor rotated_rms_norm(const torch::Tensor& x, int64_t width, double eps) {
  const auto xf = x.to(torch::kFloat);
  return (xf * torch::rsqrt(xf.pow(2).sum(-1, true) / static_cast<double>(width) + eps)).to(x.scalar_type());
}

torch::Tensor extended_attention_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype) {
  auto m = attention_mask.to(dtype).unsqueeze(1).unsqueeze(2);  // [B, 1, 1, T]
  return (1.0 - m) * mask_min(dtype);
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, bool random_init) {
  weight = register_parameter("weight", torch::zeros({out, in}));
  // A packed block may keep no inputs or outputs; Kaiming's bound is infinite for fan-in 0.
  if (random_init && weight.numel() > 0) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    bias = register_parameter("bias", torch::zeros({out}));
    const double bound = in > 0 ? 1.0 / std::sqrt(static_cast<double>(in)) : 0.0;
    if (random_init) torch::nn::init::uniform_(bias, -bound, bound);
  }
}

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  if (!x.device().is_cpu()) return torch::dropout(x, p, true);
  if (p >= 1) return x * 0;
  uint64_t seed;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = gen.get<at::CPUGeneratorImpl>()->random64();
  }
  const double keep_scale = 1.0 / (1.0 - p);
  const uint64_t threshold = static_cast<uint64_t>(std::llround(p * 4294967296.0));  // drop when u32 < p * 2^32
  auto mask = torch::empty(x.sizes(), torch::TensorOptions().dtype(torch::kFloat));
  float* m = mask.data_ptr<float>();
  const int64_t n = mask.numel(), pairs = (n + 1) / 2;
  const float scale = static_cast<float>(keep_scale);
  at::parallel_for(0, pairs, 8192, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      uint64_t z = seed + static_cast<uint64_t>(i + 1) * 0x9E3779B97F4A7C15ull;  // splitmix64
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      m[2 * i] = (z & 0xffffffffull) >= threshold ? scale : 0.0f;
      if (2 * i + 1 < n) m[2 * i + 1] = (z >> 32) >= threshold ? scale : 0.0f;
    }
  });
  return x * (x.scalar_type() == torch::kFloat ? mask : mask.to(x.scalar_type()));
}

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias,
                     double divisor, double dropout_p, torch::Tensor* probs) {
  // Head width 0 (a packed head with no q/k dims left: every score is 0, so the weights are the
  // softmax of the bias alone; or no value dims: an empty context): SDPA does not take empty heads.
  if (probs || q.size(-1) == 0 || v.size(-1) == 0) {
    auto scores = torch::matmul(q, k.transpose(-1, -2));
    if (divisor != 1.0) scores = scores / divisor;
    if (bias.defined()) scores = scores + bias;
    auto p = torch::softmax(scores, -1);
    if (probs) *probs = p;
    return torch::matmul(models::dropout(p, dropout_p, dropout_p > 0), v);
  }
  // On CPU, dropout inside SDPA is its math path with bernoulli_: the same steps with the
  // fast dropout instead. Query/key heads narrower or wider than value heads (a packed SP3
  // model) also send SDPA to its math path, whose guard against fully masked rows (where,
  // isneginf, all over every score) took ~13% of such a model's forward; our masks are finite
  // (mask_value), so a plain softmax is safe.
  if (q.device().is_cpu() && (dropout_p > 0 || q.size(-1) != v.size(-1))) {
    auto scores = torch::matmul(q, k.transpose(-1, -2));
    if (divisor != 1.0) scores = scores / divisor;
    if (bias.defined()) scores = scores + bias;
    return torch::matmul(models::dropout(torch::softmax(scores, -1), dropout_p, true), v);
  }
  // The mask must share the query's dtype (bf16 under autocast).
  const auto mask = bias.defined() && bias.scalar_type() != q.scalar_type() ? bias.to(q.scalar_type()) : bias;
  return at::scaled_dot_product_attention(q, k, v, mask, dropout_p, /*is_causal=*/false, 1.0 / divisor);
}

static models::Linear linear(int64_t in, int64_t out, bool bias, bool random_init = true) {
  return models::Linear(in, out, bias, random_init);
}

AttentionImpl::AttentionImpl(const TransformerConfig& c, const AttentionShape& shape, BlockIO io)
    : num_heads(shape.heads), qk_dim(shape.qk_dim), vo_dim(shape.vo_dim),
      score_divisor(c.scale_attention ? std::sqrt(static_cast<double>(c.head_dim())) : 1.0) {
  const int64_t in = io.in < 0 ? c.hidden_size : io.in, out = io.out < 0 ? c.hidden_size : io.out;
  const int64_t memory = io.memory_in < 0 ? in : io.memory_in;
  q = register_module("q", linear(in, num_heads * qk_dim, c.bias, io.random_init));
  k = register_module("k", linear(memory, num_heads * qk_dim, c.bias, io.random_init));
  v = register_module("v", linear(memory, num_heads * vo_dim, c.bias, io.random_init));
  o = register_module("o", linear(num_heads * vo_dim, out, c.bias, io.random_init));
  attn_dropout = register_module("attn_dropout", Dropout(c.attention_dropout));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* probs,
                                     const torch::Tensor& memory, KVCache* cache, const AttentionMasks* masks, AttentionTaps* taps) {
  const int64_t B = x.size(0), T = x.size(1);
  if (num_heads == 0) return o(x.new_zeros({B, T, 0}));  // a packed block left with its output bias
  auto split = [&](const torch::Tensor& t, int64_t w) { return t.view({B, t.size(1), num_heads, w}).transpose(1, 2); };
  // A projection, handed out if asked, then through its compactor if there is one.
  auto project = [&](Linear& map, const std::shared_ptr<LinearImpl>& compactor, const torch::Tensor& in, torch::Tensor* tap) {
    auto y = map(in);
    if (tap) *tap = y.detach();
    return compactor ? compactor->forward(y) : y;
  };
  auto qh = split(project(q, compactors.q, x, taps ? &taps->q : nullptr), qk_dim);
  if (masks && masks->qk.defined()) qh = qh * masks->qk;  // removes the masked dims' score terms
  torch::Tensor kh, vh;
  if (memory.defined() && cache && cache->k.defined()) {  // cross-attention: memory projected once
    kh = cache->k, vh = cache->v;
  } else {
    const auto& src = memory.defined() ? memory : x;
    kh = split(project(k, compactors.k, src, taps ? &taps->k : nullptr), qk_dim);
    vh = split(project(v, compactors.v, src, taps ? &taps->v : nullptr), vo_dim);
    if (cache && !memory.defined() && cache->k.defined()) {
      kh = torch::cat({cache->k, kh}, 2);
      vh = torch::cat({cache->v, vh}, 2);
    }
    if (cache) cache->k = kh, cache->v = vh;
  }
  const double p = is_training() ? attn_dropout->p : 0.0;
  auto ctx = attend(qh, kh, vh, bias, score_divisor, p, probs);  // [B, H, T, vo]
  // Masks on the context rather than the values, so a key/value cache holds the plain values.
  if (masks && masks->head.defined()) ctx = ctx * masks->head.view({1, num_heads, 1, 1});
  if (masks && masks->vo.defined()) ctx = ctx * masks->vo;
  auto flat = ctx.transpose(1, 2).contiguous().view({B, T, num_heads * vo_dim});
  if (taps) taps->context = flat.detach();
  return o(compactors.o ? compactors.o->forward(flat) : flat);
}

FeedForwardImpl::FeedForwardImpl(const TransformerConfig& c, int64_t inner, BlockIO io) : act(c.activation) {
  const int64_t f = inner >= 0 ? inner : c.intermediate_size;
  const int64_t in = io.in < 0 ? c.hidden_size : io.in, out = io.out < 0 ? c.hidden_size : io.out;
  fc1 = register_module("fc1", linear(in, f, c.bias, io.random_init));
  if (c.gated_ffn) gate = register_module("gate", linear(in, f, c.bias, io.random_init));
  fc2 = register_module("fc2", linear(f, out, c.bias, io.random_init));
  inner_dropout = register_module("inner_dropout", Dropout(c.ffn_dropout));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x, const torch::Tensor& neurons, torch::Tensor* activations) {
  auto h = activation(act, fc1(x));
  if (gate) h = h * gate(x);
  if (neurons.defined()) h = h * neurons;
  if (activations) *activations = h.detach();
  return fc2(inner_dropout(h));
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, int64_t width_) : eps(eps_), width(width_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto squares = x.to(torch::kFloat32).pow(2);
  auto variance = width > 0 ? squares.sum(-1, true) / static_cast<double>(width) : squares.mean(-1, /*keepdim=*/true);
  auto h = x * torch::rsqrt(variance + eps);
  if (weight.scalar_type() == torch::kFloat16 || weight.scalar_type() == torch::kBFloat16) h = h.to(weight.scalar_type());
  return weight * h;
}

static torch::nn::LayerNorm make_norm(const TransformerConfig& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.norm_eps));
}

TransformerLayerImpl::TransformerLayerImpl(const TransformerConfig& c, size_t i)
    : pre_norm(c.pre_norm), rotated_width(c.rotated_norm_width), eps(c.norm_eps) {
  SCULPT_CHECK(rotated_width == 0 || pre_norm, "a rotated residual stream needs pre-norm blocks");
  const LayerShape shape = c.layer_shape(i);
  SCULPT_CHECK(pre_norm || (shape.attn.present && shape.ffn), "a post-norm layer cannot drop a block (its norm stays)");
  // Per-site widths: the stream before the layer, between its blocks, after it.
  const int64_t in = c.stream_width(i);
  const bool per_site = !shape.attn_from.empty();
  const int64_t mid = per_site ? static_cast<int64_t>(shape.attn_from.size()) : in;
  const int64_t out = per_site ? static_cast<int64_t>(shape.ffn_from.size()) : mid;
  if (per_site) {
    SCULPT_CHECK(rotated_width > 0, "per-site stream widths need a rotated stream (its norms read any width)");
    attn_site.build(*this, "attn_shortcut", shape.attn_from, in);
    ffn_site.build(*this, "ffn_shortcut", shape.ffn_from, mid);
  }
  if (shape.attn.present) {
    attn = register_module("attn", Attention(c, shape.attn, BlockIO{in, mid}));
    if (rotated_width == 0) attn_norm = register_module("attn_norm", make_norm(c));
  }
  if (shape.ffn) {
    ffn = register_module("ffn", FeedForward(c, shape.ffn_dim, BlockIO{mid, out}));
    if (rotated_width == 0) ffn_norm = register_module("ffn_norm", make_norm(c));
  }
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

void SiteShortcut::build(torch::nn::Module& owner, const std::string& name, const std::vector<int64_t>& from, int64_t in) {
  scale = owner.register_parameter(name, torch::ones({static_cast<int64_t>(from.size())}));
  // A site that keeps exactly the coordinates before it needs no gather: the index stays undefined.
  bool identity = static_cast<int64_t>(from.size()) == in;
  for (size_t j = 0; identity && j < from.size(); ++j) identity = from[j] == static_cast<int64_t>(j);
  if (identity) return;
  // Not a buffer: Module::to(dtype) would make it float. forward moves it to the input's device.
  index = torch::tensor(from, torch::kLong);
  index = torch::where(index < 0, torch::full_like(index, in), index);
}

torch::Tensor SiteShortcut::forward(const torch::Tensor& x) {
  if (!scale.defined()) return x;
  if (!index.defined()) return x * scale;
  if (index.device() != x.device()) index = index.to(x.device());
  // A zero column appended, then one gather over rows of the flattened tokens: ~3x faster on the
  // CPU than a gather along the last dim of the 3-D tensor (measured at 32x128x700).
  const int64_t w = x.size(-1);
  auto sizes = x.sizes().vec();
  sizes.back() = index.size(0);
  auto rows = torch::constant_pad_nd(x, {0, 1}).reshape({-1, w + 1}).index_select(1, index);
  return (rows * scale).view(sizes);
}

torch::Tensor at_site(const torch::Tensor& t, const LayerMasks* masks, int64_t row) {
  return masks && masks->sites.defined() ? t * masks->sites[row] : t;
}

torch::Tensor masked_block_output(torch::Tensor out, const torch::Tensor& gate, const LayerMasks* masks) {
  if (!masks) return out;
  if (gate.defined()) out = out * gate;
  if (masks->hidden.defined()) out = out * masks->hidden;
  return out;
}

torch::Tensor TransformerLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* probs,
                                            KVCache* cache, const LayerMasks* masks) {
  const torch::Tensor none;
  const auto& neurons = masks ? masks->neurons : none;
  const AttentionMasks* am = masks ? &masks->attn : nullptr;
  auto attn_out = [&](const torch::Tensor& in) {
    return masked_block_output(attn(in, bias, probs, none, cache, am), masks ? masks->attn.gate : none, masks);
  };
  auto ffn_out = [&](const torch::Tensor& in) { return masked_block_output(ffn(in, neurons), masks ? masks->ffn : none, masks); };
  if (pre_norm) {
    auto norm = [&](torch::nn::LayerNorm& n, const torch::Tensor& t) { return n ? n(t) : rotated_rms_norm(t, rotated_width, eps); };
    // The residual into each next site: through the packed shortcut, or masked whole (a student).
    auto h = attn_site.forward(x);
    h = at_site(attn ? h + dropout(attn_out(norm(attn_norm, x))) : h, masks, 0);
    auto y = ffn_site.forward(h);
    return at_site(ffn ? y + dropout(ffn_out(norm(ffn_norm, h))) : y, masks, 1);
  }
  SCULPT_CHECK(!masks || (!masks->hidden.defined() && !masks->sites.defined()),
               "a post-norm layer's stream masks belong to its norm sites (compress/sp3_bert.h)");
  auto h = attn_norm(x + dropout(attn_out(x)));
  return ffn_norm(h + dropout(ffn_out(h)));
}

EmbeddingsImpl::EmbeddingsImpl(const TransformerConfig& c) {
  tok = register_module("tok", torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size)
                                                        .padding_idx(c.pad_token_id)));
  pos = register_module("pos", torch::nn::Embedding(c.max_positions, c.hidden_size));
  type = register_module("type", torch::nn::Embedding(c.type_vocab_size, c.hidden_size));
  norm = register_module("norm", make_norm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
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
