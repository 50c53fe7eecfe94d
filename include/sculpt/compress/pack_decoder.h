// Packing a masked pre-norm decoder into the smaller dense model it computes (method.md §3.9,
// §7.1 for pre-norm streams). Masks (models/layers.h: ModelMasks) act through the shared layers;
// packing keeps the heads, head dims, FFN neurons and blocks whose masks are non-zero and the
// stream coordinates that any writer keeps, and folds each soft mask value into the weights that
// produce what it scales (query rows, value rows, FFN output columns, the writers' rows), so the
// packed model computes what the masked one computes. The stream can be sliced only in a
// rotated model (compress/rotate.h), whose norms read every coordinate as an RMS over the
// original width; an unrotated OPT's LayerNorm reads the removed coordinates too and is refused
// stream masks with that reason.
#pragma once
#include <string>
#include <vector>

#include "sculpt/compress/sp3_bert.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"

namespace sculpt::compress {

// The packed OPT (eval mode, same dtype and device); MODEL is left unchanged. Its config carries
// one LayerShape per layer (saved as the `sculpt_packed` block), hidden_size the kept width.
// Per-site masks (LayerMasks::sites) give each site its own kept coordinates: the blocks read
// and write those, and the residual between sites is a gather with the site's values as scale
// (LayerShape::attn_from/ffn_from, the layers' shortcut tensors).
models::Opt pack_opt(models::Opt& model, const models::ModelMasks& masks);
// The packed T5: MASKS has the encoder's blocks, then the decoder's (cross-attention masks in
// theirs); one stream mask for both streams, which share the embedding (as compress/rotate.h
// rotates them by one Q), or per-site masks (both streams start at the embeddings' site; the
// cross-attention's keys and values read the encoder's last). T5's RMS norms need no rotation
// for a sliced stream: they divide by the original width. The kept self-attention heads read
// their own rows of the stack's relative bias (LayerShape::bias_heads); soft stream values (or
// per-site masks) untie a tied LM head.
models::T5 pack_t5(models::T5& model, const models::ModelMasks& masks);

// One linear map of a family in mask terms. Each side is a product of factors (heads x head
// dims, or a stream's or FFN's coordinates): its size is the product of the factors' sums, the
// map's weight count size(in) * size(out) * gate. With keep probabilities that is the expected
// size in the Lagrangian; with 0/1 masks the packed model's exact count.
struct MaskedMap {
  std::string name;
  std::vector<torch::Tensor> in, out;
  torch::Tensor gate;  // a block's scalar mask (undefined: 1)
};

// OPT's table: q, k, v, o, fc1, fc2 per layer. KEEP holds the masks (or keep probabilities) in
// the shapes of ModelMasks; the stream that the readers see is KEEP.embed's (the student shares
// one stream mask), or with per-site masks each block reads the site before it and writes the one
// after it; undefined members are all ones of C's sizes.
std::vector<MaskedMap> opt_map_table(const models::ModelMasks& keep, const models::TransformerConfig& c);
// SP3's mask set as the shared layers' masks (head dims tiled over heads), or its keep
// probabilities in the same shapes: in its shared-stream form (Sp3MaskSet with shared_hidden:
// one stream mask for every writer), or with OWN_SITES its hidden masks as the embeddings' site
// and each layer's sites in stream order (LayerMasks::sites: two, three with cross-attention).
models::ModelMasks model_masks(const Sp3Masks& masks, const EncoderShape& shape, bool own_sites = false);
models::ModelMasks model_keep(const Sp3KeepProbs& keep, bool own_sites = false);
// The same masks with every non-zero value 1: what the packed model's sizes follow.
models::ModelMasks binary_masks(models::ModelMasks masks);

// T5's: self-attention, cross-attention (decoder), FFN (wi_0 and wi_1 both) per block, encoder
// first; every map reads or writes the one stream.
std::vector<MaskedMap> t5_map_table(const models::ModelMasks& keep, const models::TransformerConfig& c);
// Σ size(in) size(out) gate over the table: differentiable in the factors.
torch::Tensor expected_weights(const std::vector<MaskedMap>& table);
// The weights of every attention (q, k, v, o) and FFN (fc1, gate, fc2) map in MODEL, from its tensors.
int64_t linear_map_weights(torch::nn::Module& model);

}  // namespace sculpt::compress
