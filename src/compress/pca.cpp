#include "sculpt/compress/pca.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "sculpt/core/error.h"

namespace sculpt::compress {

std::pair<torch::Tensor, torch::Tensor> sorted_eigh(const torch::Tensor& m) {
  auto [values, vectors] = torch::linalg_eigh(m, "L");  // ascending
  auto order = torch::arange(values.size(0) - 1, -1, -1, torch::kLong);
  return {values.index_select(0, order), vectors.index_select(1, order)};
}

Sp3Moments collect_sp3_moments(Sp3Bert& student, const std::vector<models::Batch>& examples, const PcaOptions& o) {
  torch::NoGradGuard no_grad;
  student->eval();
  const auto& c = student->config;
  const int64_t H = c.num_heads, dh = c.head_dim(), D = c.hidden_size;
  Sp3Moments m;
  // On the model's device: the statistics are the activations' own products, in fp64.
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(student->parameters().front().device());
  for (int64_t j = 0; j < student->num_sites(); ++j) m.site.push_back(torch::zeros({D, D}, f64));
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (auto* v : {&m.q, &m.k, &m.v}) v->push_back(torch::zeros({H, dh, dh}, f64));
  std::mt19937_64 rng(o.seed);
  for (const auto& ex : examples) {
    SCULPT_CHECK(ex.input_ids.size(0) == 1, "PCA collection takes one unpadded example per batch");
    Sp3Features f;
    student->forward(ex.to(f64.device()), {}, false, &f);
    const int64_t T = ex.input_ids.size(1);
    std::vector<int64_t> positions(static_cast<size_t>(T));
    std::iota(positions.begin(), positions.end(), 0);
    std::shuffle(positions.begin(), positions.end(), rng);
    positions.resize(static_cast<size_t>(std::min(T, o.tokens_per_example)));
    auto idx = torch::tensor(positions, torch::kLong).to(f64.device());
    auto rows = [&](const torch::Tensor& t) { return t[0].index_select(0, idx).to(torch::kFloat64); };  // [n, dim]
    for (size_t j = 0; j < m.site.size(); ++j) {
      auto x = rows(f.site_inputs[j]);
      m.site[j] += x.t().matmul(x);
    }
    for (size_t l = 0; l < m.q.size(); ++l) {
      auto head_moment = [&](const torch::Tensor& t) {
        auto x = rows(t).view({-1, H, dh}).permute({1, 2, 0});  // [H, dh, n]
        return x.matmul(x.transpose(1, 2));
      };
      m.q[l] += head_moment(f.q[l]);
      m.k[l] += head_moment(f.k[l]);
      m.v[l] += head_moment(f.v[l]);
    }
    m.rows += static_cast<int64_t>(positions.size());
  }
  return m;
}

namespace {

torch::Tensor block_diag(const std::vector<torch::Tensor>& blocks) {
  const int64_t n = blocks.front().size(0), H = static_cast<int64_t>(blocks.size());
  auto out = torch::zeros({n * H, n * H}, blocks.front().options());
  for (int64_t h = 0; h < H; ++h) out.narrow(0, h * n, n).narrow(1, h * n, n).copy_(blocks[static_cast<size_t>(h)]);
  return out;
}

// Singular values of the (implicit) data matrix from its second moment, floored so that
// inverting them stays finite.
torch::Tensor singular(const torch::Tensor& eigenvalues) {
  auto s = eigenvalues.clamp_min(0).sqrt();
  return s.clamp_min(s.max().item<double>() * 1e-6 + 1e-12);
}

}  // namespace

void init_sp3_from_pca(Sp3Bert& student, const Sp3Moments& m, const PcaOptions& o) {
  torch::NoGradGuard no_grad;
  const auto& c = student->config;
  const int64_t H = c.num_heads;
  SCULPT_CHECK(o.mode == "paper" || o.mode == "exact", "PCA init mode '{}' is not paper or exact", o.mode);
  const bool exact = o.mode == "exact";
  const int64_t D = c.hidden_size;
  for (int64_t j = exact ? 0 : o.skip_sites; j < student->num_sites(); ++j) {
    auto* site = student->sites[static_cast<size_t>(j)]->as<LnSite>();
    torch::Tensor U;
    if (exact) {
      // Basis of the centred inputs: C X^T X C with C = I - 11^T/D.
      auto C = torch::eye(D, torch::kFloat64) - 1.0 / static_cast<double>(D);
      U = sorted_eigh(C.matmul(m.site[static_cast<size_t>(j)]).matmul(C)).second;
      site->in->weight.copy_(U.t().matmul(C).to(torch::kFloat32).matmul(site->in->weight));
      site->rms = true;
    } else {
      U = sorted_eigh(m.site[static_cast<size_t>(j)]).second;
      site->in->weight.copy_(U.t().to(torch::kFloat32).matmul(site->in->weight));
    }
    site->out->weight.copy_(site->out->weight.matmul(U.to(torch::kFloat32)));
  }
  for (int64_t l = 0; o.head_compactors && l < c.num_layers; ++l) {
    auto* layer = student->layers[static_cast<size_t>(l)]->as<Sp3Layer>();
    std::vector<torch::Tensor> u, v, cv, co;
    for (int64_t h = 0; h < H; ++h) {
      auto [eq, Uq] = sorted_eigh(m.q[static_cast<size_t>(l)][h]);
      auto [ek, Uk] = sorted_eigh(m.k[static_cast<size_t>(l)][h]);
      auto Sq = singular(eq), Sk = singular(ek);
      auto M = torch::diag(Sq).matmul(Uq.t()).matmul(Uk).matmul(torch::diag(Sk));
      auto [Um, Sm, Vmh] = torch::linalg_svd(M, false);
      auto root = torch::diag(Sm.sqrt());
      u.push_back(Uq.matmul(torch::diag(1.0 / Sq)).matmul(Um).matmul(root).t());
      v.push_back(root.matmul(Vmh).matmul(torch::diag(1.0 / Sk)).matmul(Uk.t()));
      auto Uv = sorted_eigh(m.v[static_cast<size_t>(l)][h]).second;
      cv.push_back(Uv.t());
      co.push_back(Uv);
    }
    layer->cq->weight.copy_(block_diag(u).to(torch::kFloat32));
    layer->ck->weight.copy_(block_diag(v).to(torch::kFloat32));
    layer->cv->weight.copy_(block_diag(cv).to(torch::kFloat32));
    layer->co->weight.copy_(block_diag(co).to(torch::kFloat32));
  }
}

}  // namespace sculpt::compress
