// PackedBert: the dense, smaller BERT that SP3 packing produces (method.md §3.9). Every site
// of the residual stream keeps its own width; each layer has explicit residual maps R
// (d_out x d_in) where the original has identities, heads with their own q/k and v widths,
// and LayerNorms whose statistics run over the ORIGINAL width D (the pruned coordinates are
// zeros: mean = S1/D, var = S2/D - mean^2, closed form). Saved as an HF-like directory whose
// config.json is BERT's plus a `sculpt_packed` block with the per-layer sizes. The head is the
// base config's: sequence classification or question answering (SculptPackedBertFor<head>).
#pragma once
#include <torch/nn.h>

#include <vector>

#include "sculpt/models/config.h"
#include "sculpt/models/encoder_head.h"
#include "sculpt/models/key_map.h"
#include "sculpt/models/layers.h"
#include "sculpt/models/outputs.h"

namespace sculpt::models {

struct PackedLayerDims {
  int64_t attn_dim = 0;   // width after the attention block's LayerNorm
  int64_t out_dim = 0;    // width after the FFN block's LayerNorm
  int64_t heads = 0;      // kept attention heads (0: the block is only its output bias)
  int64_t qk_dim = 0;     // per-head query/key width
  int64_t vo_dim = 0;     // per-head value width
  int64_t ffn_dim = 0;    // kept FFN neurons (0: the block is only its output bias)
  // CoFi's code: a block removed by its layer mask skips its LayerNorm, the state passes through.
  bool skip_attn_norm = false, skip_ffn_norm = false;
};

struct PackedBertConfig {
  TransformerConfig base;  // the original shape: D (norm width), vocab, head, eps, dropouts
  int64_t embedding_dim = 0;
  std::vector<PackedLayerDims> layers;
  bool rms_norm = false;   // sites normalise by the root mean square (SP3 `exact` init)
  // CoFi mode: every site keeps the same dims in the original basis, so each residual map is
  // a diagonal (stored as a vector and applied elementwise).
  bool diagonal_residual = false;
  // CoFi mode: LayerNorm statistics over the kept dims only (as CoFi), not the original width.
  bool norm_over_kept = false;
};

nlohmann::json packed_config_to_json(const PackedBertConfig& c);
PackedBertConfig packed_config_from_json(const nlohmann::json& j, const std::string& source);
// config.json written by sculpt's packing (AutoModel cannot load it, as with CoFi's output).
bool is_packed_bert(const nlohmann::json& config);

// LayerNorm (or RMS norm) of x's d kept coordinates as if the other width - d were zeros
// (width <= 0: over the d coordinates themselves).
torch::Tensor packed_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, int64_t width,
                          double eps, bool rms);

// An elementwise weight and bias as a module of its own (a norm's affine, a diagonal residual
// map), so that a packed layer's parameters are listed in its forward's order: the order that
// gradient-norm clipping sums them in, as before the layer's matrices became Linears.
struct ElementwiseImpl : torch::nn::Module {
  explicit ElementwiseImpl(int64_t d);
  torch::Tensor weight, bias;
};
TORCH_MODULE(Elementwise);

struct PackedBertLayerImpl : torch::nn::Module {
  PackedBertLayerImpl(int64_t d_in, const PackedLayerDims& dims, const TransformerConfig& base, bool diagonal_residual,
                      bool norm_over_kept);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& attention_bias, bool rms);

  PackedLayerDims dims;
  int64_t width;  // 0: LayerNorm over the kept dims
  double eps;
  bool diagonal_residual;
  // The shared core's blocks at the packed sizes (the heads' own q/k and v widths, the scores at
  // the original head width's scaling), reading and writing each site's own width; their Linears
  // are what int8 kernels (quantization) reach.
  Attention attn{nullptr};
  FeedForward ffn{nullptr};
  Linear res1{nullptr}, res2{nullptr};     // dense residual maps (SP3)
  Elementwise r1{nullptr}, r2{nullptr};    // diagonal residual maps (CoFi): a scale and a bias per dim
  Elementwise ln1{nullptr}, ln2{nullptr};  // the norms' affines
  Dropout dropout{nullptr};
};
TORCH_MODULE(PackedBertLayer);

struct PackedBertImpl : torch::nn::Module {
  explicit PackedBertImpl(PackedBertConfig config);
  ModelOutput forward(const Batch& batch, const ForwardOptions& options = {});
  PackedBertConfig config;
  torch::Tensor tok, pos, type, ln0_w, ln0_b;
  torch::nn::ModuleList layers{nullptr};
  EncoderHeads heads;  // the base config's head (classifier or span head), reading the last site's width
  Dropout dropout{nullptr};
};
TORCH_MODULE(PackedBert);

KeyMap packed_bert_key_map(const PackedBertConfig& c);
PackedBert load_packed_bert(const std::string& dir);
void save_packed_bert(PackedBert& model, const std::string& dir);

// Weight counts of a packed model, from its shape alone: `matrices` are SP3's definition (Q,
// K, V, O, W1, W2 and the two residual maps per layer), `residual` the residual maps' share.
struct PackedCounts {
  int64_t matrices = 0, residual = 0, encoder_parameters = 0, total_parameters = 0;
};
PackedCounts count_packed(const PackedBertConfig& config);

}  // namespace sculpt::models
