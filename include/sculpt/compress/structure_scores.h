// How much each attention head and FFN neuron of a BERT encoder matters, for one-shot pruning
// (no mask training): from the weights alone, from activations on unlabelled inputs, or from
// first-order Taylor terms on a labelled sample. Computed on the CoFi-mode student (identity
// compactors, sp3_bert.h), whose forward reports the activations and whose structures the
// packing code already knows.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "sculpt/compress/sp3_bert.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"

namespace sculpt::compress {

// fp64 on the CPU; higher = more important. Units of one kind compare with each other (across
// layers too); a head's and a neuron's scores do not compare.
struct StructureScores {
  torch::Tensor head;  // [L, H]
  torch::Tensor ffn;   // [L, F]
  std::string source;  // what they were computed from, for compression.json
};

// Squared L2 norm of each unit's weights and biases: a head's rows of W_q, W_k, W_v (and
// their biases) and its columns of W_o; a neuron's row of W_1 (and its bias) and column of W_2.
StructureScores magnitude_scores(Sp3Bert& model);

// From activations over the real (unpadded) tokens of `batches`, with no masks:
//  * "mean_abs": each head's mean |context| and each neuron's mean |activation|;
//  * "apoz": a neuron scores 1 - its average percentage of zeros (network trimming), a zero
//    being an activation <= 0 (GELU's output is negative where ReLU's is 0); heads, whose
//    context has no sign to speak of, keep mean |context|.
StructureScores activation_scores(Sp3Bert& model, const std::vector<models::Batch>& batches, const std::string& statistic);

// The same statistics for OPT and T5 (T5: its self-attention heads and FFN neurons, encoder then
// decoder, the decoder reading each example shifted right), read by kernels on the output maps
// of the shared layers. EXAMPLES: single unpadded examples (every token counts).
StructureScores activation_scores(models::Opt& model, const std::vector<models::Batch>& examples, const std::string& statistic);
StructureScores activation_scores(models::T5& model, const std::vector<models::Batch>& examples, const std::string& statistic);

// First-order Taylor importance: sum over a unit's weights of |w * dL/dw|, the gradient that of
// the task loss averaged over the labelled `batches` (eval mode, no dropout).
StructureScores taylor_scores(Sp3Bert& model, const std::vector<models::Batch>& batches);

// The same on a masked language model (a BertForMaskedLM, before any fine-tuning: zero-shot
// structured pruning): the gradient that of the masked-LM loss, averaged over every masked token
// of `masked` (batches naming their masked positions and labels, data/mlm_masking.h). Its
// encoder's heads and neurons are the units of the classifier it becomes.
StructureScores taylor_mlm_scores(models::Bert& mlm, const std::vector<models::Batch>& masked);

// Sums an elementwise quantity f(w) of every weight and bias into the unit it belongs to (the
// grouping magnitude and Taylor scores share); the output biases of W_o and W_2 belong to none.
using UnitQuantity = std::function<torch::Tensor(const torch::Tensor& w)>;
StructureScores group_by_unit(Sp3Bert& model, const UnitQuantity& f);
StructureScores group_by_unit(models::Bert& model, const UnitQuantity& f);
StructureScores group_by_unit(models::Opt& model, const UnitQuantity& f);
// T5: the self-attention heads and FFN neurons (a gated FFN's neuron: its rows of wi_0 and wi_1
// and its column of wo) of the encoder's blocks, then the decoder's; cross-attention heads and
// the stack's relative bias are not units.
StructureScores group_by_unit(models::T5& model, const UnitQuantity& f);

// OPT's Taylor terms: the gradient that of its causal-LM loss (next token, every position after
// the first) or, for a sequence classifier, of the task loss, averaged over the sample: single
// unpadded examples, labelled for a classifier.
StructureScores taylor_opt_scores(models::Opt& model, const std::vector<models::Batch>& examples);

// T5's: the gradient that of its sequence-to-sequence loss over the targets of `corrupted`
// (input_ids and labels, one unpadded example a batch: span corruption, data/span_corruption.h,
// for zero-shot scores), averaged over every target token of the sample.
StructureScores taylor_t5_scores(models::T5& model, const std::vector<models::Batch>& corrupted);

}  // namespace sculpt::compress
