#include "sculpt/compress/pack_decoder.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"

namespace sculpt::compress {
namespace {

using torch::Tensor;

// A mask's values as fp32 on the CPU, all ones when undefined.
Tensor values(const Tensor& m, int64_t n) {
  if (!m.defined()) return torch::ones({n});
  SCULPT_CHECK(m.numel() == n, "pack: a mask has {} entries where {} are due", m.numel(), n);
  return m.detach().to(torch::kCPU, torch::kFloat).reshape({n});
}
Tensor kept(const Tensor& v) { return torch::nonzero(v).flatten(); }
double scalar(const Tensor& m) { return m.defined() ? m.detach().to(torch::kCPU, torch::kDouble).item<double>() : 1.0; }

// TO.copy_(FROM) on TO's device and dtype, shapes checked.
void put(const Tensor& to, const Tensor& from) {
  SCULPT_CHECK(to.sizes() == from.sizes(), "pack: shape {} where {} is due", c10::str(from.sizes()), c10::str(to.sizes()));
  to.copy_(from.to(to.device(), to.scalar_type()));
}

// Rows ROWS of a [out, in] weight and its bias, each row scaled by SCALE[row] (undefined: 1),
// columns COLS (undefined: all), each column scaled by COL_SCALE (undefined: 1).
void copy_linear(models::Linear& to, const models::Linear& from, const Tensor& rows, const Tensor& row_scale,
                 const Tensor& cols, const Tensor& col_scale = {}) {
  auto W = from->weight.detach().to(torch::kCPU, torch::kFloat).index_select(0, rows);
  if (cols.defined()) W = W.index_select(1, cols);
  if (col_scale.defined()) W = W * col_scale.unsqueeze(0);
  if (row_scale.defined()) W = W * row_scale.unsqueeze(1);
  put(to->weight, W);
  if (from->bias.defined()) {
    auto b = from->bias.detach().to(torch::kCPU, torch::kFloat).index_select(0, rows);
    put(to->bias, row_scale.defined() ? b * row_scale : b);
  }
}

// Flat row indices of heads H (kept) x dims J (kept) in a [heads * width] projection.
Tensor head_rows(const Tensor& heads, const Tensor& dims, int64_t width) {
  return (heads.unsqueeze(1) * width + dims.unsqueeze(0)).flatten();
}

}  // namespace

models::Opt pack_opt(models::Opt& model, const models::ModelMasks& masks) {
  torch::NoGradGuard no_grad;
  const auto& c = model->config;
  const int64_t D = c.hidden_size, L = c.num_layers;
  const bool rotated = c.rotated_norm_width > 0, projected = c.word_embed_proj_dim != D;
  SCULPT_CHECK(c.pre_norm, "pack: OPT with post-LayerNorm blocks cannot be packed");
  SCULPT_CHECK(static_cast<int64_t>(masks.layers.size()) == L, "pack: {} layer masks for {} layers", masks.layers.size(), L);
  bool stream_masked = masks.embed.defined();
  for (const auto& m : masks.layers) stream_masked = stream_masked || m.hidden.defined();
  SCULPT_CHECK(rotated || !stream_masked,
               "pack: the stream of an unrotated OPT cannot be sliced: its LayerNorms read every coordinate (mean and "
               "variance), so rotate it first (sculpt compress --method slice) and mask the rotated stream");

  // The stream keeps every coordinate that some writer keeps.
  const Tensor z_embed = values(masks.embed, D);
  Tensor any = z_embed != 0;
  for (const auto& m : masks.layers) any = any | (values(m.hidden, D) != 0);
  const Tensor K = kept(any);
  const int64_t d = K.numel();
  SCULPT_CHECK(d > 0, "pack: every stream coordinate is masked");

  models::TransformerConfig pc = c;
  pc.hidden_size = d;
  if (!projected) pc.word_embed_proj_dim = d;  // the token embeddings are the stream's own width
  if (rotated) pc.d_kv = c.head_dim();
  std::vector<models::LayerShape> shapes;
  struct Kept { Tensor heads, qk, vo, neurons, z_head, z_qk, z_vo, z_neurons, z_out; double g_attn, g_ffn; };
  std::vector<Kept> plan;
  for (int64_t l = 0; l < L; ++l) {
    const auto& m = masks.layers[static_cast<size_t>(l)];
    auto* layer = model->layers[static_cast<size_t>(l)]->as<models::TransformerLayer>();
    Kept k;
    k.g_attn = layer->attn ? scalar(m.attn) : 0.0;
    k.g_ffn = layer->ffn ? scalar(m.ffn) : 0.0;
    k.z_out = values(m.hidden, D).index_select(0, K);
    models::LayerShape s{0, 0, 0, 0, k.g_attn != 0, k.g_ffn != 0};
    if (s.attn) {
      auto* a = layer->attn.get();
      k.z_head = values(m.head, a->num_heads), k.z_qk = values(m.qk, a->qk_dim), k.z_vo = values(m.vo, a->vo_dim);
      k.heads = kept(k.z_head), k.qk = kept(k.z_qk), k.vo = kept(k.z_vo);
      s.heads = k.heads.numel(), s.qk_dim = k.qk.numel(), s.vo_dim = k.vo.numel();
    }
    if (s.ffn) {
      k.z_neurons = values(m.neurons, layer->ffn->fc1->weight.size(0));
      k.neurons = kept(k.z_neurons);
      s.ffn_dim = k.neurons.numel();
    }
    shapes.push_back(s);
    plan.push_back(k);
  }
  pc.layer_shapes = shapes;

  models::Opt packed(pc);
  packed->to(model->embed_tokens->weight.device(), model->embed_tokens->weight.scalar_type());
  // Embeddings: the stream's writers keep K, scaled by the embedding mask.
  const Tensor ze = z_embed.index_select(0, K);
  auto cpu = [](const Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat); };
  put(packed->embed_positions->weight, cpu(model->embed_positions->weight).index_select(1, K) * ze);
  if (projected) {
    put(packed->embed_tokens->weight, cpu(model->embed_tokens->weight));
    copy_linear(packed->project_in, model->project_in, K, ze, {});
    copy_linear(packed->project_out, model->project_out, torch::arange(c.word_embed_proj_dim), {}, K);
  } else {
    put(packed->embed_tokens->weight, cpu(model->embed_tokens->weight).index_select(1, K) * ze);
  }
  if (model->final_norm) {
    put(packed->final_norm->weight, cpu(model->final_norm->weight));
    put(packed->final_norm->bias, cpu(model->final_norm->bias));
  }
  if (model->score) copy_linear(packed->score, model->score, torch::arange(c.num_labels), {}, projected ? Tensor() : K);
  if (model->lm_head) copy_linear(packed->lm_head, model->lm_head, torch::arange(c.vocab_size), {}, K);

  for (int64_t l = 0; l < L; ++l) {
    auto* from = model->layers[static_cast<size_t>(l)]->as<models::TransformerLayer>();
    auto* to = packed->layers[static_cast<size_t>(l)]->as<models::TransformerLayer>();
    const Kept& k = plan[static_cast<size_t>(l)];
    auto copy_norm = [&](torch::nn::LayerNorm& t, const torch::nn::LayerNorm& f) {
      if (f) put(t->weight, cpu(f->weight)), put(t->bias, cpu(f->bias));
    };
    if (to->attn) {
      auto* a = from->attn.get();
      copy_norm(to->attn_norm, from->attn_norm);
      const Tensor qk_rows = head_rows(k.heads, k.qk, a->qk_dim), vo_rows = head_rows(k.heads, k.vo, a->vo_dim);
      // Queries carry the qk mask; values the head and vo masks (the context is linear in them,
      // the probabilities summing to 1); the output rows the block gate and the written coordinates.
      copy_linear(to->attn->q, a->q, qk_rows, k.z_qk.index_select(0, k.qk).repeat({k.heads.numel()}), K);
      copy_linear(to->attn->k, a->k, qk_rows, {}, K);
      const Tensor v_scale = (k.z_head.index_select(0, k.heads).unsqueeze(1) * k.z_vo.index_select(0, k.vo).unsqueeze(0)).flatten();
      copy_linear(to->attn->v, a->v, vo_rows, v_scale, K);
      copy_linear(to->attn->o, a->o, K, k.z_out * k.g_attn, vo_rows);
    }
    if (to->ffn) {
      auto* f = from->ffn.get();
      copy_norm(to->ffn_norm, from->ffn_norm);
      copy_linear(to->ffn->fc1, f->fc1, k.neurons, {}, K);
      if (f->gate) copy_linear(to->ffn->gate, f->gate, k.neurons, {}, K);
      copy_linear(to->ffn->fc2, f->fc2, K, k.z_out * k.g_ffn, k.neurons, k.z_neurons.index_select(0, k.neurons));
    }
  }
  packed->eval();
  return packed;
}

std::vector<MaskedMap> opt_map_table(const models::ModelMasks& keep, const models::TransformerConfig& c) {
  const int64_t L = c.num_layers;
  auto or_ones = [](const Tensor& t, int64_t n) { return t.defined() ? t.reshape({-1}) : torch::ones({n}); };
  const Tensor stream = or_ones(keep.embed, c.hidden_size);
  std::vector<MaskedMap> table;
  for (int64_t l = 0; l < L; ++l) {
    const models::LayerMasks none;
    const auto& m = static_cast<size_t>(l) < keep.layers.size() ? keep.layers[static_cast<size_t>(l)] : none;
    const auto s = c.layer_shape(static_cast<size_t>(l));
    const Tensor head = or_ones(m.head, s.heads), qk = or_ones(m.qk, s.qk_dim), vo = or_ones(m.vo, s.vo_dim);
    const Tensor neurons = or_ones(m.neurons, s.ffn_dim);
    const std::string at = fmt::format("layers.{}.", l);
    if (s.attn) {
      table.push_back({at + "attn.q", {stream}, {head, qk}, m.attn});
      table.push_back({at + "attn.k", {stream}, {head, qk}, m.attn});
      table.push_back({at + "attn.v", {stream}, {head, vo}, m.attn});
      table.push_back({at + "attn.o", {head, vo}, {stream}, m.attn});
    }
    if (s.ffn) {
      table.push_back({at + "ffn.fc1", {stream}, {neurons}, m.ffn});
      if (c.gated_ffn) table.push_back({at + "ffn.gate", {stream}, {neurons}, m.ffn});
      table.push_back({at + "ffn.fc2", {neurons}, {stream}, m.ffn});
    }
  }
  return table;
}

models::ModelMasks model_masks(const Sp3Masks& m, const EncoderShape& s) {
  models::ModelMasks out;
  out.embed = m.hidden[0];  // shared: every row is the same mask
  for (int64_t l = 0; l < s.layers; ++l) {
    models::LayerMasks lm;
    if (m.qk.defined()) lm.qk = m.qk[l].narrow(0, 0, s.head_dim);  // a d_head pattern tiled over the heads
    if (m.vo.defined()) lm.vo = m.vo[l].narrow(0, 0, s.head_dim);
    lm.head = m.head[l], lm.attn = m.mha[l], lm.ffn = m.ffn_layer[l], lm.neurons = m.ffn[l], lm.hidden = out.embed;
    out.layers.push_back(lm);
  }
  return out;
}

models::ModelMasks model_keep(const Sp3KeepProbs& p) {
  models::ModelMasks out;
  out.embed = p.hidden[0];
  for (int64_t l = 0; l < p.head.size(0); ++l) {
    models::LayerMasks lm;
    lm.qk = p.qk[l], lm.vo = p.vo[l], lm.head = p.head[l], lm.attn = p.mha[l], lm.ffn = p.ffn_layer[l], lm.neurons = p.ffn[l];
    lm.hidden = out.embed;
    out.layers.push_back(lm);
  }
  return out;
}

models::ModelMasks binary_masks(models::ModelMasks m) {
  auto b = [](Tensor& t) {
    if (t.defined()) t = (t.detach() != 0).to(torch::kFloat);
  };
  b(m.embed);
  for (auto& l : m.layers) b(l.qk), b(l.vo), b(l.head), b(l.attn), b(l.ffn), b(l.neurons), b(l.hidden);
  return m;
}

torch::Tensor expected_weights(const std::vector<MaskedMap>& table) {
  Tensor total = torch::zeros({}, torch::kDouble);
  auto size = [](const std::vector<Tensor>& factors) {
    Tensor s = torch::ones({}, torch::kDouble);
    for (const auto& f : factors) s = s * f.sum().to(torch::kDouble);
    return s;
  };
  for (const auto& map : table) {
    Tensor w = size(map.in) * size(map.out);
    if (map.gate.defined()) w = w * map.gate.reshape({}).to(torch::kDouble);
    total = total + w;
  }
  return total;
}

int64_t opt_map_weights(models::Opt& model) {
  int64_t n = 0;
  for (const auto& m : *model->layers) {
    auto* l = m->as<models::TransformerLayer>();
    if (l->attn)
      for (auto* lin : {&l->attn->q, &l->attn->k, &l->attn->v, &l->attn->o}) n += (*lin)->weight.numel();
    if (l->ffn) {
      n += l->ffn->fc1->weight.numel() + l->ffn->fc2->weight.numel();
      if (l->ffn->gate) n += l->ffn->gate->weight.numel();
    }
  }
  return n;
}

}  // namespace sculpt::compress
