// Sparsity accounting as pure, differentiable functions of the masks' keep probabilities.
//  * SP3: the REMAINING fraction of encoder weight matrices, residual maps included
//    (all kept = (6D^2 + 2DF) / (4D^2 + 2DF) = 14/12 for BERT-base's shape).
//  * CoFi: the PRUNED fraction of encoder parameters (biases counted, embeddings not).
#pragma once
#include <torch/types.h>

namespace sculpt::compress {

struct EncoderShape {
  int64_t layers = 12, hidden = 768, heads = 12, head_dim = 64, ffn = 3072;
};

// Keep probabilities (L = P(z > 0)) of SP3's masks. hidden: [2L+1, D] for the LN sites
// (0 = embeddings, 2l+1 = attention LN of layer l, 2l+2 = its FFN LN); qk, vo: [L, d_head]
// (shared by the heads of a layer); head: [L, H]; mha, ffn_layer: [L]; ffn: [L, F].
struct Sp3KeepProbs {
  torch::Tensor hidden, qk, vo, head, mha, ffn, ffn_layer;
  torch::Tensor cross_qk, cross_vo, cross_head, cross_mha;  // the last C layers' cross-attention (undefined: none)
};

// Expected number of remaining encoder weights (Q, K, V, O, W1, W2 and the two residual
// maps per layer) and its fraction of the dense encoder's (4D^2 + 2DF) L.
torch::Tensor sp3_expected_params(const Sp3KeepProbs& p);
double sp3_dense_params(const EncoderShape& s);
torch::Tensor sp3_expected_remaining(const Sp3KeepProbs& p, const EncoderShape& s);

// CoFi's masks: hidden [D] (shared by all layers; undefined = no hidden pruning), head [L, H],
// head_layer [L], ffn [L, F], ffn_layer [L].
struct CofiKeepProbs {
  torch::Tensor hidden, head, head_layer, ffn, ffn_layer;
};
double cofi_prunable_params(const EncoderShape& s);  // L [(4D^2 + 4D) + (2DF + D + 4D)]
torch::Tensor cofi_expected_params(const CofiKeepProbs& p, const EncoderShape& s);
torch::Tensor cofi_expected_sparsity(const CofiKeepProbs& p, const EncoderShape& s);  // pruned fraction

}  // namespace sculpt::compress
