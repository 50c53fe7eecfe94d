#include "sculpt/compress/pack_decoder.h"

#include <torch/torch.h>

#include <algorithm>

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
Tensor cpu(const Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat); }

// TO.copy_(FROM) on TO's device and dtype, shapes checked.
void put(const Tensor& to, const Tensor& from) {
  SCULPT_CHECK(to.sizes() == from.sizes(), "pack: shape {} where {} is due", c10::str(from.sizes()), c10::str(to.sizes()));
  to.copy_(from.to(to.device(), to.scalar_type()));
}

// Rows ROWS of a [out, in] weight and its bias, each row scaled by ROW_SCALE (undefined: 1),
// columns COLS (undefined: all), each column scaled by COL_SCALE (undefined: 1).
void copy_linear(models::Linear& to, const models::Linear& from, const Tensor& rows, const Tensor& row_scale,
                 const Tensor& cols, const Tensor& col_scale = {}) {
  auto W = cpu(from->weight).index_select(0, rows);
  if (cols.defined()) W = W.index_select(1, cols);
  if (col_scale.defined()) W = W * col_scale.unsqueeze(0);
  if (row_scale.defined()) W = W * row_scale.unsqueeze(1);
  put(to->weight, W);
  if (from->bias.defined()) {
    auto b = cpu(from->bias).index_select(0, rows);
    put(to->bias, row_scale.defined() ? b * row_scale : b);
  }
}

// Flat row indices of heads H (kept) x dims J (kept) in a [heads * width] projection.
Tensor head_rows(const Tensor& heads, const Tensor& dims, int64_t width) {
  return (heads.unsqueeze(1) * width + dims.unsqueeze(0)).flatten();
}

// The stream's kept coordinates: every one that some writer keeps; the embeddings' values.
struct StreamPlan {
  Tensor K, z_embed;  // z_embed over K
  bool masked = false;
};
StreamPlan plan_stream(const models::ModelMasks& masks, int64_t D) {
  StreamPlan p;
  p.masked = masks.embed.defined();
  const Tensor z = values(masks.embed, D);
  Tensor any = z != 0;
  for (const auto& m : masks.layers) {
    p.masked = p.masked || m.hidden.defined();
    any = any | (values(m.hidden, D) != 0);
  }
  p.K = kept(any);
  SCULPT_CHECK(p.K.numel() > 0, "pack: every stream coordinate is masked");
  p.z_embed = z.index_select(0, p.K);
  return p;
}

// What packing keeps of one attention block (null: none) and the values it folds.
struct AttentionPlan {
  models::AttentionShape shape{0, 0, 0, false};
  Tensor heads, qk, vo, z_head, z_qk, z_vo;
  double gate = 0;
};
AttentionPlan plan_attention(const models::Attention& a, const models::AttentionMasks& m) {
  AttentionPlan p;
  p.gate = a ? scalar(m.gate) : 0.0;
  if (p.gate == 0) return p;
  p.z_head = values(m.head, a->num_heads), p.z_qk = values(m.qk, a->qk_dim), p.z_vo = values(m.vo, a->vo_dim);
  p.heads = kept(p.z_head), p.qk = kept(p.z_qk), p.vo = kept(p.z_vo);
  p.shape = {p.heads.numel(), p.qk.numel(), p.vo.numel(), true};
  return p;
}

// Queries carry the qk mask; values the head and vo masks (the context is linear in them, the
// probabilities summing to 1); the output rows the block gate and the stream values Z_OUT of
// K_OUT. The maps read the stream's coordinates K_IN (keys and values: K_MEMORY when given).
void pack_attention(models::Attention& to, const models::Attention& from, const AttentionPlan& p, const Tensor& K_in,
                    const Tensor& K_out, const Tensor& z_out, const Tensor& K_memory = {}) {
  const Tensor qk_rows = head_rows(p.heads, p.qk, from->qk_dim), vo_rows = head_rows(p.heads, p.vo, from->vo_dim);
  const Tensor& K_kv = K_memory.defined() ? K_memory : K_in;  // cross-attention: keys and values read the encoder's output
  copy_linear(to->q, from->q, qk_rows, p.z_qk.index_select(0, p.qk).repeat({p.heads.numel()}), K_in);
  copy_linear(to->k, from->k, qk_rows, {}, K_kv);
  const Tensor v_scale = (p.z_head.index_select(0, p.heads).unsqueeze(1) * p.z_vo.index_select(0, p.vo).unsqueeze(0)).flatten();
  copy_linear(to->v, from->v, vo_rows, v_scale, K_kv);
  copy_linear(to->o, from->o, K_out, z_out * p.gate, vo_rows);
}

struct FfnPlan {
  Tensor neurons, z_neurons;
  double gate = 0;
};
FfnPlan plan_ffn(const models::FeedForward& f, const models::LayerMasks& m) {
  FfnPlan p;
  p.gate = f ? scalar(m.ffn) : 0.0;
  if (p.gate == 0) return p;
  p.z_neurons = values(m.neurons, f->fc1->weight.size(0));
  p.neurons = kept(p.z_neurons);
  return p;
}
void pack_ffn(models::FeedForward& to, const models::FeedForward& from, const FfnPlan& p, const Tensor& K_in, const Tensor& K_out,
              const Tensor& z_out) {
  copy_linear(to->fc1, from->fc1, p.neurons, {}, K_in);
  if (from->gate) copy_linear(to->gate, from->gate, p.neurons, {}, K_in);
  copy_linear(to->fc2, from->fc2, K_out, z_out * p.gate, p.neurons, p.z_neurons.index_select(0, p.neurons));
}

void copy_layer_norm(torch::nn::LayerNorm& to, const torch::nn::LayerNorm& from) {
  if (from) put(to->weight, cpu(from->weight)), put(to->bias, cpu(from->bias));
}

// The table's terms of one attention block and one FFN reading the stream's coordinates IN and
// writing OUT (a cross-attention's keys and values read MEMORY's).
void attention_maps(std::vector<MaskedMap>& table, const std::string& at, const Tensor& in, const Tensor& out,
                    const models::AttentionMasks& m, const models::AttentionShape& s, const Tensor& memory = {}) {
  if (!s.present) return;
  auto or_ones = [](const Tensor& t, int64_t n) { return t.defined() ? t.reshape({-1}) : torch::ones({n}); };
  const Tensor head = or_ones(m.head, s.heads), qk = or_ones(m.qk, s.qk_dim), vo = or_ones(m.vo, s.vo_dim);
  const Tensor& kv_in = memory.defined() ? memory : in;  // cross-attention: the encoder's output
  table.push_back({at + ".q", {in}, {head, qk}, m.gate});
  table.push_back({at + ".k", {kv_in}, {head, qk}, m.gate});
  table.push_back({at + ".v", {kv_in}, {head, vo}, m.gate});
  table.push_back({at + ".o", {head, vo}, {out}, m.gate});
}
void ffn_maps(std::vector<MaskedMap>& table, const std::string& at, const Tensor& in, const Tensor& out, const models::LayerMasks& m,
              const models::LayerShape& s, bool gated) {
  if (!s.ffn) return;
  const Tensor neurons = m.neurons.defined() ? m.neurons.reshape({-1}) : torch::ones({s.ffn_dim});
  table.push_back({at + ".fc1", {in}, {neurons}, m.ffn});
  if (gated) table.push_back({at + ".gate", {in}, {neurons}, m.ffn});
  table.push_back({at + ".fc2", {neurons}, {out}, m.ffn});
}

// Per-site masks (LayerMasks::sites) on every layer, and no writer masks; or none.
bool per_site(const models::ModelMasks& masks) {
  const bool any = std::any_of(masks.layers.begin(), masks.layers.end(), [](const auto& l) { return l.sites.defined(); });
  SCULPT_CHECK(!any || std::all_of(masks.layers.begin(), masks.layers.end(), [](const auto& l) { return l.sites.defined() && !l.hidden.defined(); }),
               "pack: per-site stream masks need every layer's sites and no writer masks");
  return any;
}

// For each coordinate in TO (of D), its position in FROM; -1 where FROM lacks it.
std::vector<int64_t> positions_in(const Tensor& to, const Tensor& from, int64_t D) {
  std::vector<int64_t> at(static_cast<size_t>(D), -1), out;
  const auto f = from.accessor<int64_t, 1>();
  const auto t = to.accessor<int64_t, 1>();
  for (int64_t j = 0; j < f.size(0); ++j) at[static_cast<size_t>(f[j])] = j;
  for (int64_t j = 0; j < t.size(0); ++j) out.push_back(at[static_cast<size_t>(t[j])]);
  return out;
}

// Every stream site's kept coordinates K and the values z its writers fold (over K). One stream
// mask: the writers' union everywhere, each writer its own values; per-site: each site's own.
struct Site {
  Tensor K, z;
};
struct SitePlan {
  Site embed;                            // both streams start here (T5's share the embedding)
  std::vector<Site> before;              // each layer's input site
  std::vector<std::vector<Site>> after;  // its sites after each block, in stream order
  bool own = false;                      // per-site masks
  bool masked = false;                   // some stream coordinate is masked at all
};
// Layers from SECOND_STACK on start a second stream at the embeddings' site and have three
// blocks (T5's decoder; OPT: none).
SitePlan plan_sites(const models::ModelMasks& masks, int64_t D, size_t second_stack) {
  SitePlan p;
  p.own = per_site(masks);
  const StreamPlan stream = plan_stream(masks, D);
  p.masked = stream.masked || p.own;
  auto site_of = [&](const Tensor& mask) -> Site {
    const Tensor v = values(mask, D), K = kept(v);
    SCULPT_CHECK(K.numel() > 0, "pack: every coordinate of a stream site is masked");
    return {K, v.index_select(0, K)};
  };
  p.embed = p.own ? site_of(masks.embed) : Site{stream.K, stream.z_embed};
  for (size_t i = 0; i < masks.layers.size(); ++i) {
    const auto& m = masks.layers[i];
    p.before.push_back(i == 0 || i == second_stack ? p.embed : p.after.back().back());
    std::vector<Site> sites;
    const int64_t blocks = i >= second_stack ? 3 : 2;
    for (int64_t r = 0; r < blocks; ++r)
      sites.push_back(p.own ? site_of(m.sites[r]) : Site{stream.K, values(m.hidden, D).index_select(0, stream.K)});
    p.after.push_back(sites);
  }
  return p;
}

// A packed layer's residual maps from its sites (LayerShape::attn_from, cross_from, ffn_from).
void set_site_lists(models::LayerShape& s, const SitePlan& p, size_t i, int64_t D) {
  if (!p.own) return;
  const auto& a = p.after[i];
  s.attn_from = positions_in(a[0].K, p.before[i].K, D);
  if (a.size() == 3) s.cross_from = positions_in(a[1].K, a[0].K, D);
  s.ffn_from = positions_in(a.back().K, a[a.size() - 2].K, D);
}
// The packed layer's shortcut scales: each site's values, in stream order.
void put_site_scales(const std::vector<models::SiteShortcut*>& shortcuts, const SitePlan& p, size_t i) {
  if (!p.own) return;
  for (size_t r = 0; r < shortcuts.size(); ++r) put(shortcuts[r]->scale, p.after[i][r].z);
}

void check_layer_count(const models::ModelMasks& masks, size_t layers) {
  SCULPT_CHECK(masks.layers.size() == layers, "pack: {} layer masks for {} layers", masks.layers.size(), layers);
}

}  // namespace

models::Opt pack_opt(models::Opt& model, const models::ModelMasks& masks) {
  torch::NoGradGuard no_grad;
  const auto& c = model->config;
  const int64_t D = c.hidden_size, L = c.num_layers;
  const bool rotated = c.rotated_norm_width > 0, projected = c.word_embed_proj_dim != D;
  SCULPT_CHECK(c.pre_norm, "pack: OPT with post-LayerNorm blocks cannot be packed");
  check_layer_count(masks, static_cast<size_t>(L));
  const SitePlan sites = plan_sites(masks, D, static_cast<size_t>(L));
  SCULPT_CHECK(rotated || !sites.masked,
               "pack: the stream of an unrotated OPT cannot be sliced: its LayerNorms read every coordinate (mean and "
               "variance), so rotate it first (sculpt compress --method slice) and mask the rotated stream");
  const Tensor& K = sites.embed.K;
  const Tensor& K_last = sites.after.back().back().K;

  models::TransformerConfig pc = c;
  pc.hidden_size = K.numel();
  if (!projected) pc.word_embed_proj_dim = pc.hidden_size;  // the token embeddings are the stream's own width
  if (rotated) pc.d_kv = c.head_dim();
  std::vector<AttentionPlan> attn;
  std::vector<FfnPlan> ffn;
  pc.layer_shapes.clear();
  for (int64_t l = 0; l < L; ++l) {
    const auto& m = masks.layers[static_cast<size_t>(l)];
    auto* layer = model->layers[static_cast<size_t>(l)]->as<models::TransformerLayer>();
    attn.push_back(plan_attention(layer->attn, m.attn));
    ffn.push_back(plan_ffn(layer->ffn, m));
    models::LayerShape s;
    s.attn = attn.back().shape;
    s.cross = {0, 0, 0, false};
    s.ffn = ffn.back().gate != 0;
    s.ffn_dim = s.ffn ? ffn.back().neurons.numel() : 0;
    set_site_lists(s, sites, static_cast<size_t>(l), D);
    pc.layer_shapes.push_back(s);
  }

  models::Opt packed(pc);
  packed->to(model->embed_tokens->weight.device(), model->embed_tokens->weight.scalar_type());
  // Embeddings: the stream's writers keep K, scaled by the embedding mask.
  const Tensor& ze = sites.embed.z;
  put(packed->embed_positions->weight, cpu(model->embed_positions->weight).index_select(1, K) * ze);
  if (projected) {
    put(packed->embed_tokens->weight, cpu(model->embed_tokens->weight));
    copy_linear(packed->project_in, model->project_in, K, ze, {});
    copy_linear(packed->project_out, model->project_out, torch::arange(c.word_embed_proj_dim), {}, K_last);
  } else {
    put(packed->embed_tokens->weight, cpu(model->embed_tokens->weight).index_select(1, K) * ze);
  }
  copy_layer_norm(packed->final_norm, model->final_norm);
  if (model->score) copy_linear(packed->score, model->score, torch::arange(c.num_labels), {}, projected ? Tensor() : K_last);
  if (model->lm_head) copy_linear(packed->lm_head, model->lm_head, torch::arange(c.vocab_size), {}, K_last);

  for (size_t i = 0; i < static_cast<size_t>(L); ++i) {
    auto* from = model->layers[i]->as<models::TransformerLayer>();
    auto* to = packed->layers[i]->as<models::TransformerLayer>();
    const Site &in = sites.before[i], &mid = sites.after[i][0], &out = sites.after[i][1];
    if (to->attn) copy_layer_norm(to->attn_norm, from->attn_norm), pack_attention(to->attn, from->attn, attn[i], in.K, mid.K, mid.z);
    if (to->ffn) copy_layer_norm(to->ffn_norm, from->ffn_norm), pack_ffn(to->ffn, from->ffn, ffn[i], mid.K, out.K, out.z);
    put_site_scales({&to->attn_site, &to->ffn_site}, sites, i);
  }
  packed->eval();
  return packed;
}

models::T5 pack_t5(models::T5& model, const models::ModelMasks& masks) {
  torch::NoGradGuard no_grad;
  const auto& c = model->config;
  const int64_t D = c.hidden_size, Le = c.num_layers, Ld = c.num_decoder_layers;
  check_layer_count(masks, static_cast<size_t>(Le + Ld));
  const SitePlan sites = plan_sites(masks, D, static_cast<size_t>(Le));
  const Site& embed = sites.embed;
  const Site &encoder_out = Le > 0 ? sites.after[static_cast<size_t>(Le) - 1].back() : embed, &decoder_out = sites.after.back().back();
  const Tensor& K = embed.K;
  const Tensor& ze = embed.z;

  models::TransformerConfig pc = c;
  pc.hidden_size = K.numel();
  // RMS norms commute with a coordinate mask once they divide by the original width.
  if (sites.masked && pc.rotated_norm_width == 0) pc.rotated_norm_width = D;
  // The shared embedding writes both streams scaled by the stream mask; a tied LM head reads the
  // decoder's last site unscaled, so soft values (or a last site of its own) untie them.
  const bool binary = ze.eq(1).all().item<bool>();
  if (c.tie_word_embeddings && (!binary || sites.own)) pc.tie_word_embeddings = false;
  std::vector<AttentionPlan> self, cross;
  std::vector<FfnPlan> ffn;
  std::vector<models::T5BlockImpl*> from_blocks;  // the encoder's, then the decoder's
  for (auto* stack : {&model->encoder, &model->decoder})
    for (const auto& b : *(*stack)->blocks) from_blocks.push_back(b->as<models::T5Block>());
  pc.layer_shapes.clear();
  for (size_t i = 0; i < from_blocks.size(); ++i) {
    const auto& m = masks.layers[i];
    auto* b = from_blocks[i];
    self.push_back(plan_attention(b->self_attn, m.attn));
    cross.push_back(plan_attention(b->cross_attn, m.cross));
    ffn.push_back(plan_ffn(b->ffn, m));
    models::LayerShape s;
    s.attn = self.back().shape;
    s.cross = cross.back().shape;
    s.ffn = ffn.back().gate != 0;
    s.ffn_dim = s.ffn ? ffn.back().neurons.numel() : 0;
    // The relative-position bias rows the kept heads read, through a packed model's own.
    if (s.attn.present)
      for (int64_t j = 0; j < s.attn.heads; ++j) {
        const int64_t h = self.back().heads[j].item<int64_t>();
        s.bias_heads.push_back(b->bias_heads.empty() ? h : b->bias_heads[static_cast<size_t>(h)]);
      }
    set_site_lists(s, sites, i, D);
    pc.layer_shapes.push_back(s);
  }

  models::T5 packed(pc);
  packed->to(model->shared->weight.device(), model->shared->weight.scalar_type());
  put(packed->shared->weight, cpu(model->shared->weight).index_select(1, K) * ze);
  if (packed->lm_head) {
    // An untied head reads the decoder's final norm output: its columns, unscaled.
    const Tensor W = model->lm_head ? cpu(model->lm_head->weight) : cpu(model->shared->weight);
    put(packed->lm_head->weight, W.index_select(1, decoder_out.K));
  }
  for (auto [to, from, out] : {std::tuple{packed->encoder, model->encoder, &encoder_out}, {packed->decoder, model->decoder, &decoder_out}}) {
    put(to->rel_bias->weight, cpu(from->rel_bias->weight));
    put(to->final_norm->weight, cpu(from->final_norm->weight).index_select(0, out->K));
  }
  std::vector<models::T5BlockImpl*> to_blocks;
  for (auto* stack : {&packed->encoder, &packed->decoder})
    for (const auto& b : *(*stack)->blocks) to_blocks.push_back(b->as<models::T5Block>());
  auto norm = [&](models::RMSNorm& to, const models::RMSNorm& from, const Tensor& K_in) {
    if (to) put(to->weight, cpu(from->weight).index_select(0, K_in));
  };
  for (size_t i = 0; i < to_blocks.size(); ++i) {
    auto *to = to_blocks[i], *from = from_blocks[i];
    const Site& in = sites.before[i];
    const auto& a = sites.after[i];
    const Site& pre_ffn = a[a.size() - 2];
    if (to->self_attn)
      norm(to->self_norm, from->self_norm, in.K), pack_attention(to->self_attn, from->self_attn, self[i], in.K, a[0].K, a[0].z);
    if (to->cross_attn)
      norm(to->cross_norm, from->cross_norm, a[0].K),
          pack_attention(to->cross_attn, from->cross_attn, cross[i], a[0].K, a[1].K, a[1].z, encoder_out.K);
    if (to->ffn) norm(to->ffn_norm, from->ffn_norm, pre_ffn.K), pack_ffn(to->ffn, from->ffn, ffn[i], pre_ffn.K, a.back().K, a.back().z);
    if (a.size() == 3) put_site_scales({&to->self_site, &to->cross_site, &to->ffn_site}, sites, i);
    else put_site_scales({&to->self_site, &to->ffn_site}, sites, i);
  }
  packed->eval();
  return packed;
}

std::vector<MaskedMap> opt_map_table(const models::ModelMasks& keep, const models::TransformerConfig& c) {
  const Tensor stream = keep.embed.defined() ? keep.embed.reshape({-1}) : torch::ones({c.hidden_size});
  const bool own_sites = per_site(keep);
  std::vector<MaskedMap> table;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const size_t i = static_cast<size_t>(l);
    const models::LayerMasks m = i < keep.layers.size() ? keep.layers[i] : models::LayerMasks{};
    const auto s = c.layer_shape(i);
    // Per-site: a block reads the site before it and writes the one after it (differentiable in both).
    const Tensor in = own_sites ? (l == 0 ? stream : keep.layers[i - 1].sites[1].reshape({-1})) : stream;
    const Tensor mid = own_sites ? m.sites[0].reshape({-1}) : stream, out = own_sites ? m.sites[1].reshape({-1}) : stream;
    attention_maps(table, fmt::format("layers.{}.attn", l), in, mid, m.attn, s.attn);
    ffn_maps(table, fmt::format("layers.{}.ffn", l), mid, out, m, s, c.gated_ffn);
  }
  return table;
}

std::vector<MaskedMap> t5_map_table(const models::ModelMasks& keep, const models::TransformerConfig& c) {
  const Tensor stream = keep.embed.defined() ? keep.embed.reshape({-1}) : torch::ones({c.hidden_size});
  const bool own_sites = per_site(keep);
  const int64_t Le = c.num_layers, L = Le + c.num_decoder_layers;
  // Per-site: each block reads the site before it and writes its own (both streams start at the
  // embeddings' site); cross-attention's keys and values read the encoder's last site.
  auto row = [&](int64_t l, int64_t r) { return keep.layers[static_cast<size_t>(l)].sites[r].reshape({-1}); };
  const Tensor memory = own_sites && Le > 0 ? row(Le - 1, 1) : stream;
  std::vector<MaskedMap> table;
  for (int64_t l = 0; l < L; ++l) {
    const size_t i = static_cast<size_t>(l);
    const bool decoder = l >= Le;
    const std::string at = fmt::format("{}.blocks.{}.", decoder ? "decoder" : "encoder", decoder ? l - Le : l);
    const models::LayerMasks m = i < keep.layers.size() ? keep.layers[i] : models::LayerMasks{};
    const auto s = c.layer_shape(i);
    const Tensor in = !own_sites || l == 0 || l == Le ? stream : row(l - 1, l - 1 >= Le ? 2 : 1);
    const Tensor self_out = own_sites ? row(l, 0) : stream, cross_out = own_sites && decoder ? row(l, 1) : self_out;
    const Tensor out = own_sites ? row(l, decoder ? 2 : 1) : stream;
    attention_maps(table, at + "self_attn", in, self_out, m.attn, s.attn);
    if (decoder) attention_maps(table, at + "cross_attn", self_out, cross_out, m.cross, s.cross, memory);
    ffn_maps(table, at + "ffn", cross_out, out, m, s, c.gated_ffn);
  }
  return table;
}

models::ModelMasks model_masks(const Sp3Masks& m, const EncoderShape& s, bool own_sites) {
  models::ModelMasks out;
  out.embed = m.hidden[0];  // shared: every row is the same mask; per-site: site 0's
  int64_t site = 1;          // per-site: each layer's rows follow in stream order (3 with cross-attention)
  for (int64_t l = 0; l < s.layers; ++l) {
    models::LayerMasks lm;
    if (m.qk.defined()) lm.attn.qk = m.qk[l].narrow(0, 0, s.head_dim);  // a d_head pattern tiled over the heads
    if (m.vo.defined()) lm.attn.vo = m.vo[l].narrow(0, 0, s.head_dim);
    lm.attn.head = m.head[l], lm.attn.gate = m.mha[l], lm.ffn = m.ffn_layer[l], lm.neurons = m.ffn[l];
    const bool cross = m.cross_head.defined() && l >= s.layers - m.cross_head.size(0);
    if (own_sites) lm.sites = m.hidden.narrow(0, site, cross ? 3 : 2), site += cross ? 3 : 2;
    else lm.hidden = out.embed;
    if (cross) {  // the last layers' cross-attention
      const int64_t c = l - (s.layers - m.cross_head.size(0));
      if (m.cross_qk.defined()) lm.cross.qk = m.cross_qk[c].narrow(0, 0, s.head_dim), lm.cross.vo = m.cross_vo[c].narrow(0, 0, s.head_dim);
      lm.cross.head = m.cross_head[c], lm.cross.gate = m.cross_mha[c];
    }
    out.layers.push_back(lm);
  }
  return out;
}

models::ModelMasks model_keep(const Sp3KeepProbs& p, bool own_sites) {
  models::ModelMasks out;
  out.embed = p.hidden[0];
  int64_t site = 1;
  for (int64_t l = 0; l < p.head.size(0); ++l) {
    models::LayerMasks lm;
    lm.attn = {p.qk[l], p.vo[l], p.head[l], p.mha[l]};
    lm.ffn = p.ffn_layer[l], lm.neurons = p.ffn[l];
    const bool cross = p.cross_head.defined() && l >= p.head.size(0) - p.cross_head.size(0);
    if (own_sites) lm.sites = p.hidden.narrow(0, site, cross ? 3 : 2), site += cross ? 3 : 2;
    else lm.hidden = out.embed;
    if (cross) {
      const int64_t c = l - (p.head.size(0) - p.cross_head.size(0));
      lm.cross = {p.cross_qk[c], p.cross_vo[c], p.cross_head[c], p.cross_mha[c]};
    }
    out.layers.push_back(lm);
  }
  return out;
}

models::ModelMasks binary_masks(models::ModelMasks m) {
  auto b = [](Tensor& t) {
    if (t.defined()) t = (t.detach() != 0).to(torch::kFloat);
  };
  b(m.embed);
  for (auto& l : m.layers) {
    for (auto* a : {&l.attn, &l.cross}) b(a->qk), b(a->vo), b(a->head), b(a->gate);
    b(l.ffn), b(l.neurons), b(l.hidden), b(l.sites);
  }
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

int64_t linear_map_weights(torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& m : model.modules()) {
    if (auto* a = m->as<models::Attention>())
      for (const auto* lin : {&a->q, &a->k, &a->v, &a->o}) n += (*lin)->weight.numel();
    if (auto* f = m->as<models::FeedForward>()) {
      n += f->fc1->weight.numel() + f->fc2->weight.numel();
      if (f->gate) n += f->gate->weight.numel();
    }
  }
  return n;
}

}  // namespace sculpt::compress
