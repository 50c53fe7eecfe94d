// Packing (method.md §3.9): fold an SP3 (or CoFi-mode) student's compactors and its eval
// masks' soft values into a PackedBert. Computed in fp64 and cast, with the in-compactor bias
// c_j folded exactly once (into the residual branch; SP3's mixer adds it twice).
#pragma once
#include "sculpt/compress/sp3_bert.h"
#include "sculpt/models/packed_bert.h"

namespace sculpt::compress {

// `masks`: the deterministic masks (Sp3MaskSet in eval mode); undefined members keep all.
models::PackedBert pack_student(Sp3Bert& student, const Sp3Masks& masks);
// The packed model's shape alone (what the masks keep), without folding any weights: what an
// evaluation needs to report the packed size.
models::PackedBertConfig packed_shape(Sp3Bert& student, const Sp3Masks& masks);
// For each hidden state the student reports (after the embeddings and after each layer), the
// affine map from the packed model's state back to the student's: h = A x + a (A: D x kept).
// A distillation projection (W, b) on the student continues on the packed model, exactly, as
// (W A, W a + b): what a fine-tune stage that keeps distilling needs (fp32).
std::vector<std::pair<torch::Tensor, torch::Tensor>> packed_state_maps(Sp3Bert& student, const Sp3Masks& masks);

}  // namespace sculpt::compress
