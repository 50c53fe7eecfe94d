#include "sculpt/compress/sp3_bert.h"

#include <torch/torch.h>

#include <cmath>

#include "sculpt/core/error.h"

namespace sculpt::compress {
namespace {

models::Linear identity_linear(int64_t d) {
  models::Linear l(d, d);
  torch::NoGradGuard no_grad;
  l->weight.copy_(torch::eye(d));
  l->bias.zero_();
  return l;
}

void copy_module(torch::nn::Module& to, torch::nn::Module& from, bool freeze) {
  auto src = from.named_parameters();
  torch::NoGradGuard no_grad;
  for (auto& p : to.named_parameters()) {
    p.value().copy_(src[p.key()]);
    if (freeze) p.value().set_requires_grad(false);
  }
}

torch::Tensor masked(const torch::Tensor& x, const torch::Tensor& mask) { return mask.defined() ? x * mask : x; }

}  // namespace

LnSiteImpl::LnSiteImpl(int64_t d, double eps) {
  in = register_module("in", identity_linear(d));
  out = register_module("out", identity_linear(d));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(eps)));
}

torch::Tensor LnSiteImpl::forward(const torch::Tensor& u, const torch::Tensor& mask) {
  // Statistics in fp32 (bf16 under autocast otherwise), over all D coordinates, masked ones
  // included as 0.
  auto h = masked(in(u), mask).to(torch::kFloat);
  torch::Tensor n;
  if (rms) {
    n = torch::rsqrt(h.pow(2).mean(-1, true) + norm->options.eps()) * h * norm->weight + norm->bias;
  } else if (kept_stats && mask.defined()) {
    auto keep = (mask != 0).to(h.scalar_type());
    auto k = keep.sum(-1, true).clamp_min(1);
    auto mean = h.sum(-1, true) / k;  // masked coordinates are 0 in h
    auto var = ((h - mean).pow(2) * keep).sum(-1, true) / k;
    n = (h - mean) * torch::rsqrt(var + norm->options.eps()) * norm->weight + norm->bias;
  } else {
    n = norm(h);
  }
  return out(masked(n, mask));
}

Sp3LayerImpl::Sp3LayerImpl(const models::TransformerConfig& c) {
  attn = register_module("attn", models::Attention(c));
  ffn = register_module("ffn", models::FeedForward(c));
  const int64_t inner = c.num_heads * c.head_dim();
  cq = register_module("cq", identity_linear(inner));
  ck = register_module("ck", identity_linear(inner));
  cv = register_module("cv", identity_linear(inner));
  co = register_module("co", identity_linear(inner));
  attn->compactors = {cq.ptr(), ck.ptr(), cv.ptr(), co.ptr()};
  dropout = register_module("dropout", models::Dropout(c.hidden_dropout));
}

Sp3BertImpl::Sp3BertImpl(models::Bert& teacher, StudentOptions o) : config(teacher->config), options(o) {
  const bool freeze_original = o.freeze_original;
  embed = register_module("embed", models::Embeddings(config));
  copy_module(*embed, *teacher->embed, freeze_original || !o.compactors);
  sites = register_module("sites", torch::nn::ModuleList());
  layers = register_module("layers", torch::nn::ModuleList());
  auto site_from = [&](torch::nn::LayerNorm& ln) {
    // Identity compactors and the LN affine moved to the out side: out = diag(γ), bias β,
    // norm affine (1, 0); the rotation of a PCA init then only changes in/out.
    LnSite s(config.hidden_size, config.norm_eps);
    torch::NoGradGuard no_grad;
    if (options.compactors) {
      s->out->weight.copy_(torch::diag(ln->weight));
      s->out->bias.copy_(ln->bias);
    } else {  // CoFi mode: the LN keeps its affine, the compactors stay fixed identities
      s->kept_stats = true;
      s->norm->weight.copy_(ln->weight);
      s->norm->bias.copy_(ln->bias);
      for (auto* l : {&s->in, &s->out})
        for (auto& p : (*l)->parameters()) p.set_requires_grad(false);
    }
    sites->push_back(s);
  };
  site_from(teacher->embed->norm);
  for (const auto& m : *teacher->layers) {
    auto* t = m->as<models::TransformerLayer>();
    Sp3Layer layer(config);
    copy_module(*layer->attn, *t->attn, freeze_original);
    copy_module(*layer->ffn, *t->ffn, freeze_original);
    if (!options.compactors)
      for (auto* l : {&layer->cq, &layer->ck, &layer->cv, &layer->co})
        for (auto& p : (*l)->parameters()) p.set_requires_grad(false);
    layers->push_back(layer);
    site_from(t->attn_norm);
    site_from(t->ffn_norm);
  }
  SCULPT_CHECK(config.head == models::HeadType::sequence_classification || config.head == models::HeadType::question_answering,
               "SP3/CoFi students take a classification or question-answering teacher");
  heads.build(*this, config, config.hidden_size);
  const auto& t = teacher->heads;
  for (auto [to, from] : {std::pair{heads.pooler, t.pooler}, {heads.classifier, t.classifier}, {heads.qa, t.qa}})
    if (to) copy_module(*to, *from, false);
}

models::ModelOutput Sp3BertImpl::forward(const models::Batch& batch, const Sp3Masks& m, bool hidden_states,
                                         Sp3Features* features) {
  auto row = [](const torch::Tensor& t, int64_t i) { return t.defined() ? t[i] : torch::Tensor(); };
  models::ModelOutput out;
  auto mask = batch.attention_mask.defined() ? batch.attention_mask : torch::ones_like(batch.input_ids);
  // Embeddings without their LayerNorm (site 0 replaces it).
  const int64_t T = batch.input_ids.size(1);
  auto positions = torch::arange(T, batch.input_ids.options()).unsqueeze(0);
  auto types = batch.token_type_ids.defined() ? batch.token_type_ids : torch::zeros_like(batch.input_ids);
  auto e = embed->tok(batch.input_ids) + embed->type(types);
  e = e + embed->pos(positions);
  if (features) *features = {};
  if (features) features->site_inputs.push_back(e.detach());
  auto x = embed->dropout(sites[0]->as<LnSite>()->forward(e, row(m.hidden, 0)));
  if (hidden_states) out.hidden_states.push_back(x);
  auto bias = models::extended_attention_mask(mask, x.scalar_type());
  const int64_t H = config.num_heads, dh = config.head_dim();
  // A row of a d_head pattern tiled over the heads, as the core's masks take it (one head's copy:
  // it broadcasts over every head, and its gradient sums over them as the tiled one's does).
  auto pattern = [&](const torch::Tensor& t, int64_t l) { return t.defined() ? t[l].view({H, dh})[0] : torch::Tensor(); };
  for (int64_t l = 0; l < config.num_layers; ++l) {
    auto* layer = layers[static_cast<size_t>(l)]->as<Sp3Layer>();
    // q's dims mask (after its compactor) removes the score terms, so k's is not needed; the
    // head mask scales each head's context (dropout commutes with it), vo its dims.
    models::AttentionMasks am{pattern(m.qk, l), pattern(m.vo, l), row(m.head, l), {}};
    models::AttentionTaps taps;
    auto att = layer->attn->forward(x, bias, nullptr, {}, nullptr, &am, features ? &taps : nullptr);
    if (features) {
      features->q.push_back(taps.q), features->k.push_back(taps.k), features->v.push_back(taps.v);
      features->context.push_back(taps.context);
    }
    if (m.mha.defined()) att = att * m.mha[l];
    auto u1 = layer->dropout(att) + x;
    if (features) features->site_inputs.push_back(u1.detach());
    auto h1 = sites[static_cast<size_t>(2 * l + 1)]->as<LnSite>()->forward(u1, row(m.hidden, 2 * l + 1));
    // CoFi: a block whose layer mask is 0 adds nothing and skips its norm (no host sync).
    if (options.skip_empty_block_norm && m.mha.defined()) h1 = torch::where(m.mha[l] == 0, u1.to(h1.scalar_type()), h1);
    torch::Tensor activations;
    auto ff = layer->ffn->forward(h1, row(m.ffn, l), features ? &activations : nullptr);
    if (features) features->ffn_act.push_back(activations);
    if (m.ffn_layer.defined()) ff = ff * m.ffn_layer[l];
    auto u2 = layer->dropout(ff) + h1;
    if (features) features->site_inputs.push_back(u2.detach());
    x = sites[static_cast<size_t>(2 * l + 2)]->as<LnSite>()->forward(u2, row(m.hidden, 2 * l + 2));
    if (options.skip_empty_block_norm && m.ffn_layer.defined()) x = torch::where(m.ffn_layer[l] == 0, u2.to(x.scalar_type()), x);
    if (hidden_states) out.hidden_states.push_back(x);
  }
  heads.forward(config, x, batch, out);
  return out;
}

namespace {
// A site per residual stream position: the embeddings', then after each block (a layer with
// cross-attention has three).
int64_t hidden_sites(int64_t layers, const MaskSetOptions& mo) { return 2 * layers + 1 + mo.cross_layers; }
}  // namespace

Sp3MaskSetImpl::Sp3MaskSetImpl(const models::TransformerConfig& c, MaskSetOptions mo) : options(mo) {
  shape = {c.num_layers, c.hidden_size, c.num_heads, c.head_dim(), c.intermediate_size};
  const int64_t L = c.num_layers;
  const HardConcreteOptions& o = mo.hard_concrete;
  hidden = register_module("hidden", HardConcrete(mo.shared_hidden ? 1 : hidden_sites(L, mo), c.hidden_size, o));
  if (mo.head_dims) {
    HardConcreteOptions tiled = o;
    tiled.repeat = c.num_heads;
    qk = register_module("qk", HardConcrete(L, c.head_dim(), tiled));
    vo = register_module("vo", HardConcrete(L, c.head_dim(), tiled));
  }
  HardConcreteOptions neurons = o;
  if (mo.ffn_init_mean) neurons.init_mean = *mo.ffn_init_mean;
  ffn = register_module("ffn", HardConcrete(L, c.intermediate_size, neurons));
  head = register_module("head", HardConcrete(L, c.num_heads, o));
  mha = register_module("mha", HardConcrete(L, 1, o));
  ffn_layer = register_module("ffn_layer", HardConcrete(L, 1, o));
  if (const int64_t C = mo.cross_layers; C > 0) {
    SCULPT_CHECK(C <= L, "cross-attention masks for {} of {} layers", C, L);
    if (mo.head_dims) {
      HardConcreteOptions tiled = o;
      tiled.repeat = c.num_heads;
      cross_qk = register_module("cross_qk", HardConcrete(C, c.head_dim(), tiled));
      cross_vo = register_module("cross_vo", HardConcrete(C, c.head_dim(), tiled));
    }
    cross_head = register_module("cross_head", HardConcrete(C, c.num_heads, o));
    cross_mha = register_module("cross_mha", HardConcrete(C, 1, o));
  }
}

Sp3Masks Sp3MaskSetImpl::sample_or_eval() {
  auto h = hidden->forward();
  if (options.shared_hidden) h = h.expand({hidden_sites(shape.layers, options), shape.hidden});
  Sp3Masks m{h, qk ? qk->forward() : torch::Tensor(), vo ? vo->forward() : torch::Tensor(), head->forward(),
             mha->forward().squeeze(1), ffn->forward(), ffn_layer->forward().squeeze(1)};
  if (cross_head) {
    if (cross_qk) m.cross_qk = cross_qk->forward(), m.cross_vo = cross_vo->forward();
    m.cross_head = cross_head->forward(), m.cross_mha = cross_mha->forward().squeeze(1);
  }
  return m;
}

Sp3KeepProbs Sp3MaskSetImpl::keep_probs() const {
  auto h = hidden->keep_prob();
  if (options.shared_hidden) h = h.expand({hidden_sites(shape.layers, options), shape.hidden});
  auto dims = [&](const HardConcrete& m) { return m ? m->keep_prob() : torch::ones({shape.layers, shape.head_dim}, h.options()); };
  Sp3KeepProbs p{h, dims(qk), dims(vo), head->keep_prob(), mha->keep_prob().squeeze(1), ffn->keep_prob(), ffn_layer->keep_prob().squeeze(1)};
  if (cross_head) {
    const int64_t C = options.cross_layers;
    auto cross_dims = [&](const HardConcrete& m) { return m ? m->keep_prob() : torch::ones({C, shape.head_dim}, h.options()); };
    p.cross_qk = cross_dims(cross_qk), p.cross_vo = cross_dims(cross_vo);
    p.cross_head = cross_head->keep_prob(), p.cross_mha = cross_mha->keep_prob().squeeze(1);
  }
  return p;
}

CofiKeepProbs Sp3MaskSetImpl::cofi_keep_probs() const {
  SCULPT_CHECK(options.shared_hidden, "CoFi's sparsity needs the shared hidden mask");
  return {hidden->keep_prob()[0], head->keep_prob(), mha->keep_prob().squeeze(1), ffn->keep_prob(), ffn_layer->keep_prob().squeeze(1)};
}

std::vector<HardConcrete> Sp3MaskSetImpl::group(int g) const {
  std::vector<HardConcrete> out;
  if (g == 0) {
    for (const auto* m : {&hidden, &qk, &vo, &ffn, &cross_qk, &cross_vo})
      if (*m) out.push_back(*m);
  } else {
    for (const auto* m : {&head, &mha, &ffn_layer, &cross_head, &cross_mha})
      if (*m) out.push_back(*m);
  }
  return out;
}

void Sp3MaskSetImpl::set_group_active(int g, bool active) {
  for (auto& m : group(g)) m->active = active;
}

}  // namespace sculpt::compress
