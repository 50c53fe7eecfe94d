#include "sculpt/compress/pack.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"

namespace sculpt::compress {
namespace {

using torch::Tensor;

Tensor f64(const Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); }
Tensor kept(const Tensor& z) { return z.nonzero().view(-1); }

// One LN site as the packed model sees it: n = norm(B u + c) over the kept set I, and the
// full-width value its consumers read back, A n + a.
struct Site {
  Tensor index, A, a, B, c, gamma, beta;
  int64_t dim() const { return index.size(0); }
};

Tensor site_mask(const Sp3Masks& m, int64_t j, int64_t D) {
  return m.hidden.defined() ? f64(m.hidden[j]) : torch::ones({D}, torch::kFloat64);
}

Site fold_site(LnSiteImpl& s, const Tensor& z, const Tensor& index) {
  Site out;
  out.index = index;
  auto zi = z.index_select(0, index);
  out.A = f64(s.out->weight).index_select(1, index) * zi.unsqueeze(0);
  out.a = f64(s.out->bias);
  out.B = zi.unsqueeze(1) * f64(s.in->weight).index_select(0, index);
  out.c = zi * f64(s.in->bias).index_select(0, index);
  out.gamma = f64(s.norm->weight).index_select(0, index);
  out.beta = f64(s.norm->bias).index_select(0, index);
  return out;
}

Tensor row_or_ones(const Tensor& m, int64_t l, int64_t n) {
  return m.defined() ? f64(m[l]).view(-1) : torch::ones({n}, torch::kFloat64);
}
double scalar_or_one(const Tensor& m, int64_t l) { return m.defined() ? f64(m[l]).item<double>() : 1.0; }

// Kept dims of a per-head pattern tiled over heads: the same set in every head, by design.
Tensor head_pattern(const Tensor& z, int64_t H, int64_t dh) {
  auto per_head = z.view({H, dh}) != 0;
  SCULPT_CHECK(per_head.eq(per_head[0].unsqueeze(0)).all().item<bool>(),
               "packing needs the same kept head dims in every head of a layer");
  return per_head[0].nonzero().view(-1);
}

Tensor rows_of(const Tensor& heads, const Tensor& dims, int64_t dh) {
  return (heads.unsqueeze(1) * dh + dims.unsqueeze(0)).view(-1);
}

void set(Tensor& to, const Tensor& from) {
  SCULPT_CHECK(to.sizes() == from.sizes(), "packing: shape mismatch {} vs {}", c10::str(to.sizes()), c10::str(from.sizes()));
  to.copy_(from.to(torch::kFloat32));
}

// A residual map as stored: the matrix, or its diagonal when it is one (checked).
Tensor residual_map(const Tensor& R, bool diagonal) {
  if (!diagonal) return R;
  auto d = R.diagonal();
  SCULPT_CHECK(torch::allclose(R, torch::diag(d), 0, 1e-9), "packing: a residual map expected diagonal is not");
  return d;
}

Tensor linear_w(const models::Linear& l) { return f64(l->weight); }
Tensor linear_b(const models::Linear& l) { return f64(l->bias); }

// What the masks keep, without any weight arithmetic: the packed shape and the kept indices.
struct LayerKeep {
  Tensor heads, qk, vo, ffn, z_qk, z_vo, z_head, z_int;
  double z_mha, z_ffn;
};
struct Plan {
  models::PackedBertConfig config;
  std::vector<Tensor> site_index;
  std::vector<LayerKeep> layers;
};

Plan plan_pack(Sp3Bert& student, const Sp3Masks& m) {
  torch::NoGradGuard no_grad;
  const auto& c = student->config;
  const int64_t D = c.hidden_size, H = c.num_heads, dh = c.head_dim(), L = c.num_layers, F = c.intermediate_size;
  const auto* first = student->sites[0]->as<LnSite>();
  Plan plan;
  models::PackedBertConfig& pc = plan.config;
  pc.base = c;
  pc.rms_norm = first->rms;
  pc.norm_over_kept = first->kept_stats;
  // CoFi mode (fixed identity compactors, one shared mask): the residual maps are diagonal.
  pc.diagonal_residual = !student->options.compactors;
  for (int64_t j = 0; j < student->num_sites(); ++j) {
    const auto* s = student->sites[static_cast<size_t>(j)]->as<LnSite>();
    SCULPT_CHECK(s->rms == first->rms && s->kept_stats == first->kept_stats, "packing: every LN site must use the same normalisation");
    plan.site_index.push_back(kept(site_mask(m, j, D)));
    SCULPT_CHECK(!pc.diagonal_residual || torch::equal(plan.site_index.back(), plan.site_index.front()),
                 "packing: CoFi mode needs one shared hidden mask");
  }
  auto width = [&](int64_t j) { return plan.site_index[static_cast<size_t>(j)].size(0); };
  pc.embedding_dim = width(0);
  for (int64_t l = 0; l < L; ++l) {
    LayerKeep k;
    k.z_qk = row_or_ones(m.qk, l, H * dh);
    k.z_vo = row_or_ones(m.vo, l, H * dh);
    k.z_head = row_or_ones(m.head, l, H);
    k.z_int = row_or_ones(m.ffn, l, F);
    k.z_mha = scalar_or_one(m.mha, l);
    k.z_ffn = scalar_or_one(m.ffn_layer, l);
    k.qk = head_pattern(k.z_qk, H, dh);
    k.vo = head_pattern(k.z_vo, H, dh);
    // A head contributes only if its probabilities and its values survive.
    k.heads = (k.z_mha != 0 && k.vo.size(0) > 0) ? kept(k.z_head) : torch::zeros({0}, torch::kLong);
    k.ffn = k.z_ffn != 0 ? kept(k.z_int) : torch::zeros({0}, torch::kLong);
    const int64_t heads = k.heads.size(0);
    const bool skip = student->options.skip_empty_block_norm;
    pc.layers.push_back({width(2 * l + 1), width(2 * l + 2), heads, heads ? k.qk.size(0) : 0, heads ? k.vo.size(0) : 0, k.ffn.size(0),
                         skip && k.z_mha == 0, skip && k.z_ffn == 0});
    plan.layers.push_back(k);
  }
  return plan;
}

}  // namespace

models::PackedBertConfig packed_shape(Sp3Bert& student, const Sp3Masks& masks) { return plan_pack(student, masks).config; }

std::vector<std::pair<Tensor, Tensor>> packed_state_maps(Sp3Bert& student, const Sp3Masks& m) {
  torch::NoGradGuard no_grad;
  const Plan plan = plan_pack(student, m);
  const int64_t D = student->config.hidden_size;
  std::vector<std::pair<Tensor, Tensor>> out;
  for (int64_t j = 0; j < student->num_sites(); j += 2) {  // site 0, then each layer's last
    const Site s = fold_site(*student->sites[static_cast<size_t>(j)]->as<LnSite>(), site_mask(m, j, D),
                             plan.site_index[static_cast<size_t>(j)]);
    out.emplace_back(s.A.to(torch::kFloat32), s.a.to(torch::kFloat32));
  }
  return out;
}

models::PackedBert pack_student(Sp3Bert& student, const Sp3Masks& m) {
  torch::NoGradGuard no_grad;
  const auto& c = student->config;
  const int64_t D = c.hidden_size, dh = c.head_dim(), L = c.num_layers;
  const Plan plan = plan_pack(student, m);
  const models::PackedBertConfig& pc = plan.config;
  const auto& keep = plan.layers;
  std::vector<Site> sites;
  for (int64_t j = 0; j < student->num_sites(); ++j)
    sites.push_back(fold_site(*student->sites[static_cast<size_t>(j)]->as<LnSite>(), site_mask(m, j, D), plan.site_index[static_cast<size_t>(j)]));
  models::PackedBert packed(pc);

  // Embeddings: h0 = B0 e + c0, with c0 added once (to the word table).
  const Site& s0 = sites[0];
  set(packed->tok, f64(student->embed->tok->weight).matmul(s0.B.t()) + s0.c.unsqueeze(0));
  set(packed->pos, f64(student->embed->pos->weight).matmul(s0.B.t()));
  set(packed->type, f64(student->embed->type->weight).matmul(s0.B.t()));
  set(packed->ln0_w, s0.gamma);
  set(packed->ln0_b, s0.beta);

  for (int64_t l = 0; l < L; ++l) {
    const Site& p = sites[static_cast<size_t>(2 * l)];
    const Site& s1 = sites[static_cast<size_t>(2 * l + 1)];
    const Site& s2 = sites[static_cast<size_t>(2 * l + 2)];
    const LayerKeep& k = keep[static_cast<size_t>(l)];
    auto* layer = student->layers[static_cast<size_t>(l)]->as<Sp3Layer>();
    auto* out = packed->layers[static_cast<size_t>(l)]->as<models::PackedBertLayer>();
    auto* a = layer->attn.get();
    if (k.heads.size(0) > 0) {
      auto qrows = rows_of(k.heads, k.qk, dh), vrows = rows_of(k.heads, k.vo, dh);
      auto Cq = linear_w(layer->cq), Ck = linear_w(layer->ck), Cv = linear_w(layer->cv), Co = linear_w(layer->co);
      auto Wq = linear_w(a->q), Wk = linear_w(a->k), Wv = linear_w(a->v), Wo = linear_w(a->o);
      // q = z_qk (Cq (Wq x + bq) + bcq); k unmasked; v scaled by z_vo and its head's z_head.
      auto vscale = k.z_vo * k.z_head.repeat_interleave(dh);
      set(out->attn->q->weight, (k.z_qk.unsqueeze(1) * Cq.matmul(Wq).matmul(p.A)).index_select(0, qrows));
      set(out->attn->q->bias, (k.z_qk * (Cq.matmul(Wq.matmul(p.a) + linear_b(a->q)) + linear_b(layer->cq))).index_select(0, qrows));
      set(out->attn->k->weight, Ck.matmul(Wk).matmul(p.A).index_select(0, qrows));
      set(out->attn->k->bias, (Ck.matmul(Wk.matmul(p.a) + linear_b(a->k)) + linear_b(layer->ck)).index_select(0, qrows));
      set(out->attn->v->weight, (vscale.unsqueeze(1) * Cv.matmul(Wv).matmul(p.A)).index_select(0, vrows));
      set(out->attn->v->bias, (vscale * (Cv.matmul(Wv.matmul(p.a) + linear_b(a->v)) + linear_b(layer->cv))).index_select(0, vrows));
      set(out->attn->o->weight, k.z_mha * s1.B.matmul(Wo).matmul(Co.index_select(1, vrows)));
    }
    // The attention block's constant part: z_MHA (Wo b_co + b_o), mapped into site 1.
    set(out->attn->o->bias, k.z_mha * s1.B.matmul(linear_w(a->o).matmul(linear_b(layer->co)) + linear_b(a->o)));
    set(pc.diagonal_residual ? out->r1->weight : out->res1->weight, residual_map(s1.B.matmul(p.A), pc.diagonal_residual));
    set(pc.diagonal_residual ? out->r1->bias : out->res1->bias, s1.B.matmul(p.a) + s1.c);
    set(out->ln1->weight, s1.gamma);
    set(out->ln1->bias, s1.beta);

    auto* f = layer->ffn.get();
    if (k.ffn.size(0) > 0) {
      set(out->ffn->fc1->weight, linear_w(f->fc1).matmul(s1.A).index_select(0, k.ffn));
      set(out->ffn->fc1->bias, (linear_w(f->fc1).matmul(s1.a) + linear_b(f->fc1)).index_select(0, k.ffn));
      set(out->ffn->fc2->weight, k.z_ffn * s2.B.matmul(linear_w(f->fc2).index_select(1, k.ffn)) * k.z_int.index_select(0, k.ffn).unsqueeze(0));
    }
    set(out->ffn->fc2->bias, k.z_ffn * s2.B.matmul(linear_b(f->fc2)));
    set(pc.diagonal_residual ? out->r2->weight : out->res2->weight, residual_map(s2.B.matmul(s1.A), pc.diagonal_residual));
    set(pc.diagonal_residual ? out->r2->bias : out->res2->bias, s2.B.matmul(s1.a) + s2.c);
    set(out->ln2->weight, s2.gamma);
    set(out->ln2->bias, s2.beta);
  }
  // The head's first map reads the last site: W (A n + a) + b = (W A) n + (W a + b).
  const Site& last = sites.back();
  const auto& from = student->heads;
  auto& to = packed->heads;
  for (auto [reader, packed_reader] : {std::pair{from.pooler, to.pooler}, {from.qa, to.qa}}) {
    if (!reader) continue;
    set(packed_reader->weight, linear_w(reader).matmul(last.A));
    set(packed_reader->bias, linear_w(reader).matmul(last.a) + linear_b(reader));
  }
  if (from.classifier) {
    set(to.classifier->weight, linear_w(from.classifier));
    set(to.classifier->bias, linear_b(from.classifier));
  }
  return packed;
}

}  // namespace sculpt::compress
