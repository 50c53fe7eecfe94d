// Partial masks of every kind for the tiny T5 fixtures (2 + 2 blocks, 4 heads of 16 dims, d_model
// 64, d_ff 128), soft values where kept and zeros where removed, one stream mask for both streams:
//  * encoder 0: some heads, head dims and neurons;
//  * encoder 1: no attention block, an FFN left with no neuron;
//  * decoder 0: some self- and cross-attention heads and dims, no FFN block;
//  * decoder 1: self-attention with no head, cross-attention whole, some neurons.
// Shared by the unit tests (compress/pack_decoder.h) and the CLI tests of packed T5 directories.
#pragma once
#include <torch/torch.h>

#include "sculpt/models/layers.h"

namespace sculpt::testing {

// n soft mask values in [0.5, 1) with `zeros` of them (at random places) removed.
inline torch::Tensor soft_mask(int64_t n, int64_t zeros) {
  auto v = torch::rand({n}) * 0.5 + 0.5;
  v.index_fill_(0, torch::randperm(n).narrow(0, 0, zeros), 0.0);
  return v;
}

inline models::ModelMasks partial_t5_masks(const models::TransformerConfig& c) {
  torch::manual_seed(9);
  const int64_t D = c.hidden_size, dh = c.head_dim(), F = c.intermediate_size;
  models::ModelMasks m;
  m.embed = soft_mask(D, D / 4);
  models::LayerMasks e0, e1, d0, d1;
  e0.attn = {soft_mask(dh, dh / 2), soft_mask(dh, dh / 4), torch::tensor({1.0f, 0.0f, 0.7f, 1.0f}), torch::tensor(0.8f)};
  e0.neurons = soft_mask(F, F / 3);
  e1.attn.gate = torch::tensor(0.0f);
  e1.neurons = torch::zeros({F}), e1.ffn = torch::tensor(0.9f);
  d0.attn = {soft_mask(dh, dh / 4), soft_mask(dh, dh / 2), torch::tensor({0.0f, 1.0f, 0.6f, 0.0f}), torch::tensor(1.0f)};
  d0.cross = {soft_mask(dh, dh / 2), soft_mask(dh, dh / 2), torch::tensor({1.0f, 0.9f, 0.0f, 0.0f}), torch::tensor(0.6f)};
  d0.ffn = torch::tensor(0.0f);
  d1.attn.head = torch::zeros({c.num_heads});
  d1.neurons = soft_mask(F, F / 2);
  for (auto* l : {&e0, &e1, &d0, &d1}) l->hidden = m.embed;
  m.layers = {e0, e1, d0, d1};
  return m;
}

}  // namespace sculpt::testing
