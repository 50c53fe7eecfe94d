// Exact rotation of a pre-norm decoder's residual stream, and slicing it (SliceGPT,
// ../shared/docs/method.md): every LayerNorm's affine is folded into the maps that read it, the
// mean is subtracted inside every map that writes the stream (token or project_in embeddings,
// positions, attention outputs, FFN outputs), so each LayerNorm sees a centred input and is an
// RMS norm, which commutes with an orthogonal Q; rotating every writer by Qᵀ and every reader by
// Q then leaves the model's function unchanged. Keeping Q's first d columns (the stream's top d
// principal directions) slices the stream to d dims, the norms still dividing by the original
// width. Implemented for OPT; post-LN OPT (opt-350m) normalises the stream itself and is refused.
// T5 (v1.0 and v1.1) already normalises by the root mean square without a mean: its norms' weights
// fold into their readers (the encoder's final norm into every cross-attention's keys and
// values) and one Q rotates both streams, which share the token embedding.
#pragma once
#include <string>
#include <vector>

#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"

namespace sculpt::compress {

// Why C cannot be rotated exactly ("" when it can).
std::string rotation_problem(const models::TransformerConfig& c);

// The rotated model: its stream is Q[:, :keep]ᵀ x (keep 0: all of Q's columns). Q [D, D] must be
// orthogonal (checked); the model itself is left unchanged. Folded in fp64.
models::Opt rotate_opt(models::Opt& model, const torch::Tensor& Q, int64_t keep = 0);

// The same model with its encoder and decoder streams rotated by Q [D, D] (orthogonal, checked)
// and kept to Q's first KEEP columns (0: all): every norm weight 1, the decoder's final norm
// weight and d_model^-0.5 output scale folded into an untied lm_head. Unsliced, an HF-loadable T5
// directory once saved; sliced, its norms divide by the original d_model (sculpt_rotated).
models::T5 rotate_t5(models::T5& model, const torch::Tensor& Q, int64_t keep = 0);

// T5's principal directions: both streams' block inputs over BATCHES (the encoder reads the
// inputs, the decoder the inputs shifted right), pooled, eigenvalues descending: [D, D].
torch::Tensor stream_pca(models::T5& model, const std::vector<models::Batch>& batches);

// The principal directions of the centred residual stream at every block's input over BATCHES
// (input ids with their attention masks, padding excluded), eigenvalues descending: [D, D].
torch::Tensor stream_pca(models::Opt& model, const std::vector<models::Batch>& batches);

}  // namespace sculpt::compress
