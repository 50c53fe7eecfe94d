#include "sculpt/data/mlm_masking.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "sculpt/core/error.h"
#include "sculpt/data/batching.h"
#include "sculpt/tokenizers/tokenizer.h"

namespace sculpt::data {

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

MlmMasking mlm_masking_for(const tokenizers::Tokenizer& tokenizer, double probability, bool whole_word) {
  SCULPT_CHECK(probability > 0 && probability < 1, "data.mlm_probability {} is not in (0, 1)", probability);
  MlmMasking m;
  m.probability = probability;
  m.whole_word = whole_word;
  const int64_t vocab = static_cast<int64_t>(tokenizer.vocab_size());
  m.random_vocab = vocab;
  m.special.assign(static_cast<size_t>(vocab), 0);
  for (const char* name : {"[MASK]", "<mask>"})
    if (tokenizer.id_to_token(tokenizer.token_to_id(name)) == name) {
      m.mask_id = tokenizer.token_to_id(name);
      break;
    }
  SCULPT_CHECK(m.mask_id >= 0, "the tokenizer has no [MASK] / <mask> token: masked language modelling needs one");
  auto mark = [&](int64_t id) {
    if (id >= 0 && id < vocab) m.special[static_cast<size_t>(id)] = 1;
  };
  const auto empty = tokenizer.encode("");  // [CLS] [SEP] (whatever the tokenizer adds)
  for (size_t i = 0; i < empty.input_ids.size(); ++i)
    if (empty.special_tokens_mask[i]) mark(empty.input_ids[i]);
  mark(tokenizer.pad_id());
  mark(m.mask_id);
  for (const char* name : {"[UNK]", "<unk>"})
    if (tokenizer.id_to_token(tokenizer.token_to_id(name)) == name) mark(tokenizer.token_to_id(name));
  if (whole_word) {
    m.continuation.assign(static_cast<size_t>(vocab), 0);
    for (int64_t id = 0; id < vocab; ++id) m.continuation[static_cast<size_t>(id)] = tokenizer.id_to_token(id).rfind("##", 0) == 0;
  }
  return m;
}

namespace {

bool can_choose(const MlmMasking& m, int32_t id) {
  return id < 0 || static_cast<size_t>(id) >= m.special.size() || !m.special[static_cast<size_t>(id)];
}

// Which tokens of one row are chosen (0/1 per token).
std::vector<uint8_t> choose(const int32_t* ids, int64_t T, const MlmMasking& m, std::mt19937_64& rng) {
  std::vector<uint8_t> chosen(static_cast<size_t>(T), 0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  if (!m.whole_word) {
    for (int64_t t = 0; t < T; ++t)
      if (can_choose(m, ids[t]) && u(rng) < m.probability) chosen[static_cast<size_t>(t)] = 1;
    return chosen;
  }
  std::vector<std::vector<int64_t>> words;
  for (int64_t t = 0; t < T; ++t) {
    if (!can_choose(m, ids[t])) continue;
    const bool cont = static_cast<size_t>(ids[t]) < m.continuation.size() && m.continuation[static_cast<size_t>(ids[t])];
    if (cont && !words.empty()) words.back().push_back(t);
    else words.push_back({t});
  }
  std::shuffle(words.begin(), words.end(), rng);
  const int64_t budget = std::min<int64_t>(512, std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(static_cast<double>(T) * m.probability))));
  int64_t covered = 0;
  for (const auto& w : words) {
    if (covered >= budget) break;
    if (covered + static_cast<int64_t>(w.size()) > budget) continue;
    for (int64_t t : w) chosen[static_cast<size_t>(t)] = 1;
    covered += static_cast<int64_t>(w.size());
  }
  return chosen;
}

}  // namespace

MaskedRows mask_rows(const std::vector<const int32_t*>& rows, int64_t T, const MlmMasking& m, const std::vector<uint64_t>& seeds) {
  SCULPT_CHECK(seeds.size() == rows.size(), "mask_rows: {} seeds for {} rows", seeds.size(), rows.size());
  const int64_t B = static_cast<int64_t>(rows.size());
  auto ids = torch::empty({B, T}, torch::kLong);
  auto a = ids.accessor<int64_t, 2>();
  std::vector<int64_t> positions, labels;
  for (int64_t b = 0; b < B; ++b) {
    std::mt19937_64 rng(seeds[static_cast<size_t>(b)]);
    const int32_t* row = rows[static_cast<size_t>(b)];
    auto chosen = choose(row, T, m, rng);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::uniform_int_distribution<int64_t> random_id(0, m.random_vocab - 1);
    for (int64_t t = 0; t < T; ++t) {
      a[b][t] = row[t];
      if (!chosen[static_cast<size_t>(t)]) continue;
      positions.push_back(b * T + t);
      labels.push_back(row[t]);
      const double r = u(rng);
      if (r < 0.8) a[b][t] = m.mask_id;
      else if (r < 0.9) a[b][t] = random_id(rng);
    }
  }
  for (int64_t b = 0; b < B && positions.empty(); ++b)  // nothing chosen in the whole batch
    for (int64_t t = 0; t < T; ++t)
      if (can_choose(m, rows[static_cast<size_t>(b)][t])) {
        positions.push_back(b * T + t), labels.push_back(rows[static_cast<size_t>(b)][t]), a[b][t] = m.mask_id;
        break;
      }
  return {ids, torch::tensor(positions, torch::kLong), torch::tensor(labels, torch::kLong)};
}

std::vector<models::Batch> mask_each_example(const std::vector<Example>& examples, const tokenizers::Tokenizer& tokenizer,
                                             uint64_t seed) {
  const auto masking = mlm_masking_for(tokenizer, 0.15, false);
  std::vector<models::Batch> out;
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    auto m = mask_rows({e.ids.data()}, static_cast<int64_t>(e.ids.size()), masking, {mix_seed(seed, i)});
    models::Batch b;
    b.input_ids = m.input_ids;
    b.attention_mask = torch::ones_like(m.input_ids);
    b.token_type_ids = torch::tensor(std::vector<int64_t>(e.types.begin(), e.types.end()), torch::kLong).view({1, -1});
    b.labels = m.labels;
    b.masked_positions = m.positions;
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace sculpt::data
