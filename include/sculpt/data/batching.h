// Encoded examples, the deterministic batch plan of an epoch (shuffled from seed + epoch,
// optionally bucketed by length), and collation with dynamic padding.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "sculpt/data/glue.h"
#include "sculpt/models/outputs.h"
#include "sculpt/tokenizers/tokenizer.h"

namespace sculpt::data {

// int32 ids and uint8 token types: 5 bytes a token instead of 16 (MNLI's 393k pairs of ~40
// tokens: 80 MB, not 250), widened to int64 only in the collated batch.
struct Example {
  std::vector<int32_t> ids;
  std::vector<uint8_t> types;
  float label = -1;
};

// On `threads` threads (<= 0: LibTorch's count), the same result for any count; progress(done)
// as rows finish (core/parallel.h).
std::vector<Example> encode_glue(const tokenizers::Tokenizer& tokenizer, const std::vector<GlueExample>& rows,
                                 int64_t max_length, int threads = 0, const std::function<void(size_t)>& progress = {});

struct PlanOptions {
  size_t batch_size = 32;
  bool shuffle = true;
  bool bucket_by_length = false;  // sort within windows of 50 batches, then shuffle batches
  bool drop_last = false;
};

// The batches of one epoch as example indices: a pure function of (sizes, options, seed,
// epoch), so a resumed run replays exactly the same order.
std::vector<std::vector<size_t>> plan_epoch(const std::vector<int64_t>& lengths, const PlanOptions& options,
                                            uint64_t seed, int64_t epoch);
std::vector<int64_t> lengths_of(const std::vector<Example>& examples);

// 0..n-1 in order, cut into batches (evaluation).
std::vector<std::vector<size_t>> consecutive_batches(size_t n, size_t batch_size);

models::Batch collate(const std::vector<Example>& examples, const std::vector<size_t>& indices, int64_t pad_id,
                      bool regression);

// Portable shuffle (std::shuffle's algorithm is implementation-defined).
void shuffle_indices(std::vector<size_t>& v, uint64_t seed);

}  // namespace sculpt::data
