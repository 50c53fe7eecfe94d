// Generic transformer building blocks. Families configure them through TransformerConfig;
// names are internal (embed.tok, layers.{i}.attn.q, ...) and mapped to HF key names by
// each family's key map (models/key_map.h).
#pragma once
#include <torch/nn.h>

#include <vector>

#include "sculpt/models/config.h"

namespace sculpt::models {

torch::Tensor activation(const std::string& name, const torch::Tensor& x);

// The most negative finite value of a dtype (HF's torch.finfo(dtype).min).
double mask_min(torch::ScalarType dtype);

// The norm of a rotated residual stream (TransformerConfig::rotated_norm_width): x divided by
// the root mean square over WIDTH coordinates, the ones sliced away counting as zeros; no affine;
// statistics in fp32.
torch::Tensor rotated_rms_norm(const torch::Tensor& x, int64_t width, double eps);

// Additive attention bias from a [B, T] 0/1 mask: 0 where attended, dtype-min where masked,
// exactly as HF (so even padded positions match the reference).
torch::Tensor extended_attention_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype);

// How a Linear multiplies when it is not the float matmul: fake quantization while training
// (compress/quantize.h) or real int8 products (models/int8_linear.h).
struct LinearKernel {
  virtual ~LinearKernel() = default;
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) = 0;
};

// nn.Linear: `weight` [out, in], `bias` [out] (optional), initialised as torch::nn::Linear
// (Kaiming uniform, a = sqrt(5)). The forward is at::linear, one addmm for any batch shape:
// LibTorch's C++ torch::nn::Linear runs matmul and then adds the bias in a second pass over
// the output for 3-D inputs. `kernel`, when set, does the product instead (quantization).
struct LinearImpl : torch::nn::Module {
  // random_init false: zeros, drawing nothing from the generator (a packed model built mid-run
  // must not move the run's random stream).
  LinearImpl(int64_t in, int64_t out, bool with_bias = true, bool random_init = true);
  torch::Tensor forward(const torch::Tensor& x) { return kernel ? kernel->forward(x, weight, bias) : at::linear(x, weight, bias); }
  torch::Tensor weight, bias;
  std::shared_ptr<LinearKernel> kernel;
};
TORCH_MODULE(Linear);

// Inverted dropout: x * mask / (1 - p) while training, x otherwise. On CPU the mask comes from
// a counter-based hash (splitmix64) of the element index and one 64-bit draw from the default
// generator, about 20x faster than bernoulli_ (which made dropout ~15% of a CPU step) and as
// reproducible (the generator is checkpointed); on CUDA it is torch::dropout.
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

// The module form (same name and place as Dropout, no parameters).
struct DropoutImpl : torch::nn::Module {
  explicit DropoutImpl(double p_ = 0.5) : p(p_) {}
  torch::Tensor forward(const torch::Tensor& x) { return models::dropout(x, p, is_training()); }
  double p;
};
TORCH_MODULE(Dropout);

// Multi-head attention on [B, H, T, d] queries/keys/values: softmax(q kᵀ / divisor + bias) v,
// dropout_p on the probabilities. Goes through at::scaled_dot_product_attention (its fused
// flash / memory-efficient kernels where dtype and shapes allow) unless the caller asks for
// the probabilities, which takes HF's step-by-step order (matmul, divide, add, softmax).
// `bias` is additive, broadcast to [B, H, Tq, Tk] (padding mask, causal mask, T5's positions).
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias,
                     double divisor, double dropout_p, torch::Tensor* probs = nullptr);

// Keys and values kept between generation steps: appended to for self-attention, computed
// once for cross-attention.
struct KVCache {
  torch::Tensor k, v;
};

// Multiplicative pruning masks (a masked student, method.md §3.4); an undefined member keeps
// everything. Soft values scale, zeros remove (compress/pack_decoder.h folds both). qk and vo are
// d_head patterns shared by the block's heads (SP3's head-dim masks): qk scales the queries'
// dims, hence each score term; vo each head's context dims.
struct AttentionMasks {
  torch::Tensor qk, vo;  // [d_head]
  torch::Tensor head;    // [H]: each head's context
  torch::Tensor gate;    // scalar: the block's output, its bias included
};

struct LayerMasks {
  AttentionMasks attn, cross;  // cross: T5's decoder blocks
  torch::Tensor ffn;           // scalar: the FFN block's output
  torch::Tensor neurons;       // [F]: the FFN's activations (a gated FFN's product)
  torch::Tensor hidden;        // [D]: the stream coordinates each block writes (pre-norm only)
  // [2, D] (pre-norm only; T5's decoder blocks [3, D]): per-site stream masks. The stream after
  // each block (attention, cross-attention, FFN, in order), residual included, is multiplied by
  // its row: what a site drops, no later block reads (SliceGPT's per-layer slicing in one
  // rotated basis).
  torch::Tensor sites;
};

// A model's masks: the stream coordinates its embeddings write, and one LayerMasks per layer
// (T5: the encoder's blocks, then the decoder's).
struct ModelMasks {
  torch::Tensor embed;  // [D]
  std::vector<LayerMasks> layers;
};

// SP3's compactors (method.md §3.2): square maps on the query, key and value projections'
// outputs and before the output map (null: none). The student that owns them registers them.
struct Compactors {
  std::shared_ptr<LinearImpl> q, k, v, o;
};

// What a block's forward hands out when asked: the projections before any compactor, the heads'
// context after the masks (what the output map reads), the FFN's masked activations. The PCA
// initialisation and the one-shot activation scores read them.
struct AttentionTaps {
  torch::Tensor q, k, v, context;
};

// A block's output under MASKS (null: as it is): times the block's GATE, then (pre-norm) the
// stream coordinates the layer writes.
torch::Tensor masked_block_output(torch::Tensor out, const torch::Tensor& gate, const LayerMasks* masks);

// Where a block's maps read from and write to when that is not the config's stream (SP3's packed
// BERT: every site its own width), and how they start.
struct BlockIO {
  int64_t in = -1, out = -1;  // < 0: the config's hidden size
  bool random_init = true;    // false: zeros, drawing nothing (a packed model built mid-run, models/packed_bert.h)
  int64_t memory_in = -1;     // cross-attention: the width keys and values read (< 0: in)
};

// The residual from one stream site to the next in a per-site packed pre-norm model
// (LayerShape::attn_from): a gather of the coordinates the next site keeps (-1: none, zero) times
// the site's soft mask values. The owner registers `scale` as its parameter.
struct SiteShortcut {
  // FROM indexes the stream of width IN; registers NAME [from.size()] on OWNER.
  void build(torch::nn::Module& owner, const std::string& name, const std::vector<int64_t>& from, int64_t in);
  torch::Tensor forward(const torch::Tensor& x);  // x itself when not built
  torch::Tensor scale, index;  // index: -1 mapped to a zero column at IN; moved to x's device on use
};
// T * MASKS->sites[ROW] when MASKS has per-site masks; T otherwise.
torch::Tensor at_site(const torch::Tensor& t, const LayerMasks* masks, int64_t row);

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const TransformerConfig& c) : AttentionImpl(c, c.layer_shape(0).attn) {}
  // SHAPE's heads and widths (a packed block); the scores keep c's head width's scaling.
  AttentionImpl(const TransformerConfig& c, const AttentionShape& shape, BlockIO io = {});
  // Returns the projected context; `probs` receives the attention probabilities if non-null.
  // `bias` is added to the scores ([B|1, H|1, Tq, Tk]: mask and/or position bias). `memory`
  // (cross-attention) supplies keys and values instead of x. `masks`: its qk, vo and head.
  // `taps`: filled with the block's intermediate values (detached).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* probs,
                        const torch::Tensor& memory = {}, KVCache* cache = nullptr, const AttentionMasks* masks = nullptr,
                        AttentionTaps* taps = nullptr);

  int64_t num_heads, qk_dim, vo_dim;
  Compactors compactors;  // SP3's student sets them; not registered here
  double score_divisor;  // sqrt(d_head), or 1 where scores are not scaled (T5)
  models::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  Dropout attn_dropout{nullptr};
};
TORCH_MODULE(Attention);

struct FeedForwardImpl : torch::nn::Module {
  // INNER neurons (< 0: the config's intermediate_size; 0: a packed block left with its bias).
  explicit FeedForwardImpl(const TransformerConfig& c, int64_t inner = -1, BlockIO io = {});
  // NEURONS [F], when defined, scales the activations (both halves of a gated FFN at once);
  // `activations` receives them after that mask (detached).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& neurons = {}, torch::Tensor* activations = nullptr);

  std::string act;
  models::Linear fc1{nullptr}, gate{nullptr}, fc2{nullptr};  // gate: gated FFNs only
  Dropout inner_dropout{nullptr};
};
TORCH_MODULE(FeedForward);

// One residual block pair: attention then FFN, each with dropout, residual and LayerNorm
// (after the residual for post-norm BERT, before the sublayer for pre-norm models). A rotated
// model (rotated_norm_width > 0) has no norm modules: its sublayers read rotated_rms_norm.
// Layer I of a packed config takes its LayerShape; a pre-norm block it removes has no modules
// (attn or ffn null) and leaves the stream as it is.
struct TransformerLayerImpl : torch::nn::Module {
  explicit TransformerLayerImpl(const TransformerConfig& c, size_t i = 0);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* probs,
                        KVCache* cache = nullptr, const LayerMasks* masks = nullptr);

  bool pre_norm;
  int64_t rotated_width = 0;
  double eps = 0;
  // A per-site packed layer (LayerShape::attn_from): the residuals into the sites after its
  // blocks (parameters attn_shortcut, ffn_shortcut). Not built otherwise.
  SiteShortcut attn_site, ffn_site;
  Attention attn{nullptr};
  torch::nn::LayerNorm attn_norm{nullptr};
  FeedForward ffn{nullptr};
  torch::nn::LayerNorm ffn_norm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(TransformerLayer);

// T5's layer norm: scale by the root mean square, no mean subtraction, no bias. `width` > 0: the
// mean of squares is over that many coordinates (a rotated stream sliced narrower, whose dropped
// coordinates count as zeros).
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps, int64_t width = 0);
  torch::Tensor forward(const torch::Tensor& x);
  double eps;
  int64_t width;
  torch::Tensor weight;
};
TORCH_MODULE(RMSNorm);

// Token + absolute position + token type embeddings, then LayerNorm and dropout (BERT).
struct EmbeddingsImpl : torch::nn::Module {
  explicit EmbeddingsImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids);

  torch::nn::Embedding tok{nullptr}, pos{nullptr}, type{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(Embeddings);

}  // namespace sculpt::models
