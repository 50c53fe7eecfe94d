#include "sculpt/data/batching.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "sculpt/core/parallel.h"

namespace sculpt::data {

std::vector<Example> encode_glue(const tokenizers::Tokenizer& tokenizer, const std::vector<GlueExample>& rows,
                                 int64_t max_length, int threads, const std::function<void(size_t)>& progress) {
  tokenizers::EncodeOptions options;
  options.truncation = "longest_first";
  options.max_length = max_length;
  std::vector<Example> out(rows.size());
  parallel_chunks(rows.size(), 256, threads, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const auto e = tokenizer.encode(rows[i].text_a, rows[i].text_b, options);
      auto& x = out[i];
      x.ids.assign(e.input_ids.begin(), e.input_ids.end());  // ids < vocab size, types 0/1: both fit
      x.types.assign(e.token_type_ids.begin(), e.token_type_ids.end());
      x.label = rows[i].label;
    }
  }, progress);
  return out;
}

void shuffle_indices(std::vector<size_t>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);  // Fisher-Yates
}

std::vector<int64_t> lengths_of(const std::vector<Example>& examples) {
  std::vector<int64_t> out;
  for (const auto& e : examples) out.push_back(static_cast<int64_t>(e.ids.size()));
  return out;
}

std::vector<std::vector<size_t>> plan_epoch(const std::vector<int64_t>& lengths, const PlanOptions& o, uint64_t seed,
                                            int64_t epoch) {
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  const uint64_t epoch_seed = seed * 1000003ULL + static_cast<uint64_t>(epoch);
  if (o.shuffle) shuffle_indices(order, epoch_seed);
  if (o.bucket_by_length) {
    const size_t window = o.batch_size * 50;
    for (size_t start = 0; start < order.size(); start += window) {
      auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + window));
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(start), end,
                       [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
    }
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t start = 0; start < order.size(); start += o.batch_size) {
    size_t end = std::min(order.size(), start + o.batch_size);
    if (o.drop_last && end - start < o.batch_size) break;
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start), order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  if (o.bucket_by_length && o.shuffle) {
    std::vector<size_t> perm(batches.size());
    std::iota(perm.begin(), perm.end(), 0);
    shuffle_indices(perm, epoch_seed ^ 0x9E3779B97F4A7C15ULL);
    std::vector<std::vector<size_t>> shuffled;
    for (size_t i : perm) shuffled.push_back(std::move(batches[i]));
    batches = std::move(shuffled);
  }
  return batches;
}

std::vector<std::vector<size_t>> consecutive_batches(size_t n, size_t batch_size) {
  std::vector<std::vector<size_t>> out;
  for (size_t begin = 0; begin < n; begin += batch_size) {
    out.emplace_back();
    for (size_t i = begin; i < std::min(n, begin + batch_size); ++i) out.back().push_back(i);
  }
  return out;
}

models::Batch collate(const std::vector<Example>& examples, const std::vector<size_t>& indices, int64_t pad_id,
                      bool regression) {
  const int64_t B = static_cast<int64_t>(indices.size());
  int64_t T = 0;
  for (size_t i : indices) T = std::max<int64_t>(T, static_cast<int64_t>(examples[i].ids.size()));
  auto ids = torch::full({B, T}, pad_id, torch::kLong), types = torch::zeros({B, T}, torch::kLong),
       mask = torch::zeros({B, T}, torch::kLong);
  auto labels = torch::empty({B}, regression ? torch::kFloat : torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>(), types_a = types.accessor<int64_t, 2>(), mask_a = mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& ex = examples[indices[static_cast<size_t>(b)]];
    for (size_t t = 0; t < ex.ids.size(); ++t) {
      ids_a[b][static_cast<int64_t>(t)] = ex.ids[t];
      types_a[b][static_cast<int64_t>(t)] = ex.types[t];
      mask_a[b][static_cast<int64_t>(t)] = 1;
    }
    if (regression) labels[b] = ex.label;
    else labels[b] = static_cast<int64_t>(ex.label);
  }
  models::Batch batch;
  batch.input_ids = ids;
  batch.token_type_ids = types;
  batch.attention_mask = mask;
  batch.labels = labels;
  return batch;
}

}  // namespace sculpt::data
