// SP3's student for post-LN BERT (method.md §3.2): every LayerNorm site j becomes
//   LNC_j(u) = W_out_j (m_j ⊙ (γ~_j ⊙ N(m_j ⊙ (W_in_j u + b_in_j)) + β~_j)) + b_out_j
// with N normalising over all D coordinates (masked ones are zeros); Q/K/V/O get compactors
// C_q, C_k, C_v (on the projections' outputs) and C_o (before W_o); masks on head dims,
// heads, the attention block, FFN neurons and the FFN block. The teacher's linear weights and
// embeddings are copied and frozen (SP3) or left trainable (a recipe switch).
#pragma once
#include <optional>
#include <torch/nn.h>

#include "sculpt/compress/hard_concrete.h"
#include "sculpt/compress/sparsity.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/encoder_head.h"

namespace sculpt::compress {

// One explicit mask structure passed into forward; an undefined member means "all kept".
struct Sp3Masks {
  torch::Tensor hidden;     // [2L+1, D]
  torch::Tensor qk, vo;     // [L, H * d_head] (a d_head pattern tiled over heads)
  torch::Tensor head;       // [L, H]
  torch::Tensor mha;        // [L]
  torch::Tensor ffn;        // [L, F]
  torch::Tensor ffn_layer;  // [L]
  // Cross-attention of the last C layers (T5's decoder blocks; undefined: none, or kept whole).
  torch::Tensor cross_qk, cross_vo;  // [C, H * d_head]
  torch::Tensor cross_head;          // [C, H]
  torch::Tensor cross_mha;           // [C]
};

// Activations gathered by forward when asked (no hooks in LibTorch): each LN site's input and
// each layer's q/k/v projections before their compactors (the PCA initialisation), the heads'
// context and the FFN neurons' activations after their masks (one-shot activation scores).
struct Sp3Features {
  std::vector<torch::Tensor> site_inputs;  // [2L+1] of [B, T, D]
  std::vector<torch::Tensor> q, k, v;      // [L] of [B, T, H * d_head]
  std::vector<torch::Tensor> context;      // [L] of [B, T, H * d_head]
  std::vector<torch::Tensor> ffn_act;      // [L] of [B, T, F]
};

struct LnSiteImpl : torch::nn::Module {
  LnSiteImpl(int64_t d, double eps);
  torch::Tensor forward(const torch::Tensor& u, const torch::Tensor& mask);
  models::Linear in{nullptr}, out{nullptr};
  torch::nn::LayerNorm norm{nullptr};  // its affine; statistics as below
  // `exact` init: the centring is folded into `in`, and the site normalises by the root mean
  // square over all D (no mean subtraction), which commutes with the rotation.
  bool rms = false;
  // CoFi mode: statistics over the kept (mask != 0) coordinates only, as CoFi's LayerNorm.
  bool kept_stats = false;
};
TORCH_MODULE(LnSite);

// The shared core's attention and FFN blocks, with SP3's compactors hooked into the attention
// (models::Compactors; registered here, under the names checkpoints have always used).
struct Sp3LayerImpl : torch::nn::Module {
  explicit Sp3LayerImpl(const models::TransformerConfig& c);
  models::Attention attn{nullptr};
  models::FeedForward ffn{nullptr};
  models::Linear cq{nullptr}, ck{nullptr}, cv{nullptr}, co{nullptr};
  models::Dropout dropout{nullptr};
};
TORCH_MODULE(Sp3Layer);

struct StudentOptions {
  bool freeze_original = true;  // SP3: the teacher's linear weights and embeddings stay fixed
  // false (CoFi mode): compactors fixed at identity and each LayerNorm keeps its own affine,
  // so the student is the plain model with masks; embeddings stay frozen as in CoFi.
  bool compactors = true;
  // CoFi's code: an MHA/FFN block whose layer mask is 0 skips its LayerNorm (the sublayer output
  // is the block's input); packing marks such layers so that the packed model does the same.
  bool skip_empty_block_norm = false;
};

struct Sp3BertImpl : torch::nn::Module {
  // Copies the teacher's weights; compactors start as identities, so with all masks kept the
  // student computes exactly what the teacher computes.
  Sp3BertImpl(models::Bert& teacher, StudentOptions options);
  Sp3BertImpl(models::Bert& teacher, bool freeze_original) : Sp3BertImpl(teacher, StudentOptions{freeze_original, true}) {}
  models::ModelOutput forward(const models::Batch& batch, const Sp3Masks& masks, bool hidden_states = false,
                              Sp3Features* features = nullptr);
  int64_t num_sites() const { return 2 * config.num_layers + 1; }

  models::TransformerConfig config;
  StudentOptions options;
  models::Embeddings embed{nullptr};  // its LayerNorm is not used: site 0 replaces it
  torch::nn::ModuleList sites{nullptr}, layers{nullptr};
  models::EncoderHeads heads;  // the teacher's head (classifier or span head), trainable
};
TORCH_MODULE(Sp3Bert);

struct MaskSetOptions {
  bool shared_hidden = false;  // CoFi: one hidden mask for every site, in the original basis
  bool head_dims = true;       // SP3's Q/K and V/O head-dim masks (CoFi prunes whole heads)
  HardConcreteOptions hard_concrete;
  std::optional<double> ffn_init_mean;  // FFN neuron masks' log alpha init mean (CoFi's code: 0)
  int64_t cross_layers = 0;  // the last this many layers also mask a cross-attention (T5's decoder), and have a third site
};

// Every SP3 mask of a BERT shape as hard-concrete variables (method.md §3.4): hidden per site,
// Q/K and V/O head dims shared across heads, FFN neurons (group 0); heads, MHA, FFN layers
// (group 1). CoFi mode: one shared hidden mask and no head-dim masks. With cross_layers, the same
// head, head-dim and block masks for the cross-attention of the last layers.
struct Sp3MaskSetImpl : torch::nn::Module {
  explicit Sp3MaskSetImpl(const models::TransformerConfig& c, MaskSetOptions options = {});
  Sp3MaskSetImpl(const models::TransformerConfig& c, HardConcreteOptions hc) : Sp3MaskSetImpl(c, MaskSetOptions{false, true, hc, std::nullopt}) {}
  Sp3Masks sample_or_eval();  // training: samples; eval: deterministic masks
  Sp3KeepProbs keep_probs() const;  // shared hidden tiled over the 2L+1 sites; no head dims = ones
  CofiKeepProbs cofi_keep_probs() const;
  std::vector<HardConcrete> group(int g) const;  // 0: hidden, head dims, FFN neurons; 1: heads, MHA, FFN layers
  void set_group_active(int g, bool active);
  EncoderShape shape;
  MaskSetOptions options;
  HardConcrete hidden{nullptr}, qk{nullptr}, vo{nullptr}, ffn{nullptr}, head{nullptr}, mha{nullptr}, ffn_layer{nullptr};
  // Cross-attention (options.cross_layers > 0): head dims in group 0, heads and the block in group 1.
  HardConcrete cross_qk{nullptr}, cross_vo{nullptr}, cross_head{nullptr}, cross_mha{nullptr};
};
TORCH_MODULE(Sp3MaskSet);

}  // namespace sculpt::compress
