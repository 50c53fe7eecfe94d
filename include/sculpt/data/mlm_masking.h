// Masked language modelling inputs, as Transformers' collators make them:
//  * DataCollatorForLanguageModeling: every non-special token is chosen with probability p
//    (0.15); a chosen token becomes [MASK] with probability 0.8, a random vocabulary id with 0.1,
//    and stays itself with 0.1; the loss is taken at the chosen tokens only.
//  * DataCollatorForWholeWordMask: words (a token and the "##" pieces after it) are chosen in a
//    random order until round(T p) tokens are covered, a word never split, then the same 80/10/10.
// Draws come from one 64-bit seed per row (splitmix64-seeded std::mt19937_64), so a row's masks
// are a pure function of (seed, row): a resumed run and any thread count draw the same ones.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace sculpt::tokenizers {
class Tokenizer;
}
namespace sculpt::models {
struct Batch;
}

namespace sculpt::data {

struct MlmMasking {
  double probability = 0.15;
  bool whole_word = false;
  int64_t mask_id = -1;
  int64_t random_vocab = 0;           // random replacements from [0, random_vocab) (HF: len(tokenizer))
  std::vector<uint8_t> special;       // by id: never chosen ([CLS], [SEP], [PAD], [UNK], [MASK])
  std::vector<uint8_t> continuation;  // by id: a word piece that continues a word ("##ing")
};

// The tokenizer's [MASK] id, its special ids and word-piece continuations; a tokenizer with no
// mask token is refused.
MlmMasking mlm_masking_for(const tokenizers::Tokenizer& tokenizer, double probability, bool whole_word);

struct MaskedRows {
  torch::Tensor input_ids;  // [B, T] long, with the replacements
  torch::Tensor positions;  // [N] long, flat indices into B*T of the chosen tokens (row-major)
  torch::Tensor labels;     // [N] long, their original ids
};

// ROWS (B pointers to T token ids each), one SEED per row. A batch where nothing was chosen (short
// rows at a low p) gets one token of its first row that can be chosen, so that its loss is defined.
MaskedRows mask_rows(const std::vector<const int32_t*>& rows, int64_t length, const MlmMasking& masking,
                     const std::vector<uint64_t>& seeds);

struct Example;

// Each example as its own unpadded batch with BERT's masking at 15% (80/10/10), example i seeded by
// mix_seed(SEED, i): the masked-LM loss that zero-shot Taylor scores read (compress/one_shot.h),
// the same whether `sculpt compress` or a recipe draws the examples.
std::vector<models::Batch> mask_each_example(const std::vector<Example>& examples, const tokenizers::Tokenizer& tokenizer,
                                             uint64_t seed);

// splitmix64 of a and b: one seed from two (run seed, example index or batch hash).
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace sculpt::data
