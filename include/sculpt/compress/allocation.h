// Which heads, FFN neurons or whole blocks one-shot pruning removes, from their scores, to a
// target fraction of the encoder's weight matrices (CoFi's sparsity, sparsity.h) or of its
// FLOPs at a given sequence length. The result is a set of 0/1 masks that the packing code
// (pack.h) folds into a smaller dense model, as it does for learned masks.
//
// Costs: "params" counts the encoder's weight matrices (a head 4 D d_head, a neuron 2 D);
// "flops" the multiply-adds x 2 of one sequence of `length` tokens (a head 8 T D d_head +
// 4 T^2 d_head for its projections, scores and context; a neuron 4 T D).
#pragma once
#include <string>

#include "sculpt/compress/sp3_bert.h"
#include "sculpt/compress/structure_scores.h"
#include "sculpt/models/packed_bert.h"

namespace sculpt::compress {

struct CostModel {
  // params or flops (above); flops at `length` tokens
  std::string of = "params";
  int64_t length = 128;
};
// The dense encoder's total by that count: L (H head + F neuron).
double dense_cost(const EncoderShape& shape, const CostModel& model);
// The same count for a packed model (residual maps included when they are full matrices):
// its fraction of dense_cost is the achieved size by the target's own definition.
double packed_cost(const models::PackedBertConfig& packed, const CostModel& model);

struct AllocationOptions {
  // units: heads and neurons; blocks: whole attention and FFN blocks (a block scores the sum of
  // its units' scores). Scores of a head and of a neuron do not compare, so each kind loses the
  // same fraction `target` of its units; a head's (neuron's) cost is the same in every layer, so
  // that removes `target` of the parameters and of the FLOPs alike, up to rounding. A layer left
  // without heads (neurons) keeps only that block's output bias.
  std::string granularity = "units";
  // global: units ranked across layers; per_layer: every layer loses the same number.
  std::string scope = "global";
};

// Deterministic masks (1 kept, 0 removed; among equal scores the earlier position goes first):
// units fill head [L, H] and ffn [L, F]; blocks fill mha [L] and ffn_layer [L].
Sp3Masks allocate(const StructureScores& scores, double target, const AllocationOptions& options);

}  // namespace sculpt::compress
