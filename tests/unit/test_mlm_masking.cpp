// Masked-LM inputs (data/mlm_masking.h) on the WordPiece fixture: what is chosen, how chosen
// tokens are replaced, whole words, and that a row's masks depend on its seed alone; T5's span
// corruption in closed form.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <tuple>

#include "sculpt/data/mlm_masking.h"
#include "sculpt/data/span_corruption.h"
#include "sculpt/models/bert.h"
#include "sculpt/tokenizers/tokenizer.h"
#include "sculpt/train/distill_loss.h"
#include "test_util.h"

namespace sculpt {
namespace {

class MlmMasking : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = testing::shared_path("fixtures/hf/tok_bert_wordpiece");
    if (dir.empty()) GTEST_SKIP() << "needs ../shared/fixtures/hf/tok_bert_wordpiece; not found, skipped";
    tok = tokenizers::load_tokenizer(dir);
  }
  std::string dir;
  std::unique_ptr<tokenizers::Tokenizer> tok;
};

TEST_F(MlmMasking, SpecialIdsAndMaskTokenComeFromTheTokenizer) {
  auto m = data::mlm_masking_for(*tok, 0.15, false);
  EXPECT_EQ(m.mask_id, 4);  // the fixture: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4
  for (int id : {0, 1, 2, 3, 4}) EXPECT_TRUE(m.special[static_cast<size_t>(id)]) << id;
  EXPECT_FALSE(m.special[10]);
  EXPECT_EQ(m.random_vocab, static_cast<int64_t>(tok->vocab_size()));
}

TEST_F(MlmMasking, ChosenTokensAreLabelledAndReplacedEightyTenTen) {
  auto m = data::mlm_masking_for(*tok, 0.15, false);
  const int64_t B = 400, T = 250;
  std::vector<std::vector<int32_t>> rows(B, std::vector<int32_t>(T));
  std::vector<const int32_t*> ptrs;
  std::vector<uint64_t> seeds;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) rows[b][t] = static_cast<int32_t>(5 + (b * 31 + t * 7) % 900);
    rows[b][0] = 2, rows[b][T - 1] = 3;  // [CLS] ... [SEP]
    ptrs.push_back(rows[b].data()), seeds.push_back(data::mix_seed(11, static_cast<uint64_t>(b)));
  }
  auto out = data::mask_rows(ptrs, T, m, seeds);
  const auto pos = out.positions, labels = out.labels;
  const int64_t n = pos.numel();
  // Binomial(400 x 248, 0.15): mean 14,880, sd 112.
  EXPECT_NEAR(static_cast<double>(n), 0.15 * B * (T - 2), 5 * 112.0);
  auto flat = out.input_ids.view(-1);
  int64_t as_mask = 0, as_self = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = pos[i].item<int64_t>();
    const int64_t b = p / T, t = p % T;
    ASSERT_NE(t, 0);
    ASSERT_NE(t, T - 1);  // specials are never chosen
    ASSERT_EQ(labels[i].item<int64_t>(), rows[b][t]);
    const int64_t now = flat[p].item<int64_t>();
    as_mask += now == 4;
    as_self += now == rows[b][t];
  }
  // 80% [MASK]; the other 20% half random (which can land on the same id, 1/vocab), half kept.
  EXPECT_NEAR(static_cast<double>(as_mask) / n, 0.8, 5 * std::sqrt(0.8 * 0.2 / n));
  EXPECT_NEAR(static_cast<double>(as_self) / n, 0.1, 5 * std::sqrt(0.1 * 0.9 / n) + 0.001);
  // Unchosen tokens are untouched.
  auto chosen = torch::zeros({B * T}, torch::kBool).index_fill_(0, pos, true);
  std::vector<int32_t> all;
  for (const auto& r : rows) all.insert(all.end(), r.begin(), r.end());
  auto original = torch::tensor(all, torch::kLong);
  EXPECT_TRUE(torch::equal(flat.masked_select(chosen.logical_not()), original.masked_select(chosen.logical_not())));
  // Positions are row-major and unique.
  EXPECT_TRUE(torch::equal(pos, std::get<0>(pos.sort())));
  EXPECT_EQ(std::get<0>(torch::_unique(pos)).numel(), n);
}

TEST_F(MlmMasking, ARowsMasksDependOnItsSeedAlone) {
  auto m = data::mlm_masking_for(*tok, 0.3, false);
  std::vector<int32_t> a(40), b(40);
  for (int i = 0; i < 40; ++i) a[i] = 10 + i, b[i] = 100 + i;
  auto one = data::mask_rows({a.data(), b.data()}, 40, m, {5, 6});
  auto two = data::mask_rows({b.data(), a.data()}, 40, m, {6, 5});
  // Row a: positions of `one` in row 0 and of `two` in row 1.
  auto row_of = [](const data::MaskedRows& r, int64_t row) {
    auto sel = r.positions.div(40, "floor").eq(row);
    return std::make_pair(r.positions.masked_select(sel).remainder(40), r.input_ids[row]);
  };
  EXPECT_TRUE(torch::equal(row_of(one, 0).first, row_of(two, 1).first));
  EXPECT_TRUE(torch::equal(row_of(one, 0).second, row_of(two, 1).second));
  auto three = data::mask_rows({a.data(), b.data()}, 40, m, {7, 6});
  EXPECT_FALSE(torch::equal(row_of(one, 0).first, row_of(three, 0).first)) << "another seed, other masks";
}

TEST_F(MlmMasking, WholeWordsAreChosenWholeUpToTheBudget) {
  auto m = data::mlm_masking_for(*tok, 0.15, true);
  // Find a word start and two continuation pieces in the vocabulary.
  int32_t start = -1;
  std::vector<int32_t> pieces;
  for (int32_t id = 5; id < static_cast<int32_t>(tok->vocab_size()); ++id) {
    if (m.continuation[id] && pieces.size() < 2) pieces.push_back(id);
    else if (!m.continuation[id] && start < 0) start = id;
  }
  ASSERT_GE(start, 0);
  ASSERT_EQ(pieces.size(), 2u) << "the fixture vocabulary has ## pieces";
  // [CLS] then 13 three-token words then [SEP]: T = 41, budget round(41 x 0.15) = 6 = two words.
  std::vector<int32_t> row = {2};
  for (int w = 0; w < 13; ++w) row.insert(row.end(), {start, pieces[0], pieces[1]});
  row.push_back(3);
  const int64_t T = static_cast<int64_t>(row.size());
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto out = data::mask_rows({row.data()}, T, m, {seed});
    ASSERT_EQ(out.positions.numel(), 6) << "seed " << seed;
    for (int64_t i = 0; i < 6; i += 3) {
      const int64_t p = out.positions[i].item<int64_t>();
      EXPECT_EQ((p - 1) % 3, 0) << "a word starts at the chosen span";
      EXPECT_EQ(out.positions[i + 1].item<int64_t>(), p + 1);
      EXPECT_EQ(out.positions[i + 2].item<int64_t>(), p + 2);
    }
  }
}

TEST(MlmHead, MaskedRowsOnlyEqualTheFullLogitsAtThosePositions) {
  models::TransformerConfig c;
  c.vocab_size = 50, c.hidden_size = 16, c.num_layers = 1, c.num_heads = 2, c.intermediate_size = 24, c.max_positions = 32;
  c.head = models::HeadType::masked_lm, c.with_pooler = false;
  c.hidden_dropout = c.attention_dropout = 0;
  torch::manual_seed(0);
  models::Bert bert(c);
  bert->init_weights();
  bert->eval();
  models::Batch full;
  full.input_ids = torch::randint(5, 50, {2, 7});
  full.attention_mask = torch::ones({2, 7}, torch::kLong);
  full.token_type_ids = torch::zeros({2, 7}, torch::kLong);
  auto all = bert->forward(full).logits;  // [2, 7, 50]
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{2, 7, 50}));
  models::Batch some = full;
  some.masked_positions = torch::tensor({1, 5, 9}, torch::kLong);
  some.labels = torch::tensor({7, 8, 9}, torch::kLong);
  auto out = bert->forward(some);
  EXPECT_TRUE(testing::all_close(out.logits, all.view({14, 50}).index_select(0, some.masked_positions), 1e-6, 1e-6));
  // Its loss: the mean cross-entropy of those three rows, by hand.
  auto logp = torch::log_softmax(out.logits, -1);
  const double expected = -(logp[0][7] + logp[1][8] + logp[2][9]).item<double>() / 3;
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-5);
  // distill.lm_positions all: the head on every position, the loss still over the three chosen
  // tokens (labels -100 elsewhere, cross-entropy's ignored index): the same loss, the full logits.
  auto every = train::every_token_lm_batch(some);
  EXPECT_FALSE(every.masked_positions.defined());
  auto expect_labels = torch::full({14}, -100, torch::kLong);
  expect_labels[1] = 7, expect_labels[5] = 8, expect_labels[9] = 9;
  EXPECT_TRUE(torch::equal(every.labels, expect_labels));
  auto out_every = bert->forward(every);
  EXPECT_TRUE(testing::all_close(out_every.logits, all, 1e-6, 1e-6));
  EXPECT_NEAR(out_every.loss.item<double>(), expected, 1e-5);
  // The decoder is the word embedding matrix itself (tied).
  EXPECT_EQ(models::bert_key_map(c).back().internal, "mlm_bias");
}

TEST(SpanCorruption, NoiseCountsRoundHalfToEvenAndTheTargetsRebuildTheText) {
  // L = 100: 15 noise tokens in round(15 / 3) = 5 spans. L = 30: 4.5 rounds to 4 (numpy's
  // half to even), one span. L = 10: 1.5 rounds to 2. L = 2: 0.3 rounds to 0, raised to 1.
  for (const auto& [length, noise, spans] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{100, 15, 5}, {30, 4, 1}, {10, 2, 1}, {2, 1, 1}}) {
    for (uint64_t seed : {1ULL, 2ULL, 3ULL}) {
      const auto mask = data::random_spans_noise_mask(length, 0.15, 3.0, seed);
      ASSERT_EQ(static_cast<int64_t>(mask.size()), length);
      EXPECT_EQ(std::count(mask.begin(), mask.end(), true), noise) << length;
      int64_t starts = 0;
      for (size_t i = 0; i < mask.size(); ++i) starts += mask[i] && (i == 0 || !mask[i - 1]);
      EXPECT_EQ(starts, spans) << length << " seed " << seed;
      EXPECT_FALSE(mask.front()) << "kept tokens come first";
      EXPECT_TRUE(mask.back()) << "the interleaving ends on noise, as T5's";
    }
  }
  // The input keeps the other tokens with sentinel k (<extra_id_k> = 1099 - k in the T5 fixtures'
  // vocabulary) where span k was; the target is sentinel k then span k, for each k; both end in </s>.
  std::vector<int64_t> ids(40);
  std::iota(ids.begin(), ids.end(), 10);
  const auto c = data::span_corrupt(ids, 1099, 2, 7);
  const auto mask = data::random_spans_noise_mask(40, 0.15, 3.0, 7);  // 6 noise tokens, 2 spans
  ASSERT_EQ(c.inputs.size(), 40u - 6u + 2u + 1u);
  ASSERT_EQ(c.targets.size(), 6u + 2u + 1u);
  EXPECT_EQ(c.inputs.back(), 2);
  EXPECT_EQ(c.targets.back(), 2);
  EXPECT_EQ(c.targets.front(), 1099);
  std::vector<int64_t> rebuilt, expected_inputs, expected_targets;
  size_t t = 0;
  for (int64_t x : std::vector<int64_t>(c.inputs.begin(), c.inputs.end() - 1)) {
    if (x < 1000) {
      rebuilt.push_back(x);
      continue;
    }
    EXPECT_EQ(c.targets[t++], x) << "sentinels in the same order";
    while (t + 1 < c.targets.size() && c.targets[t] < 1000) rebuilt.push_back(c.targets[t++]);
  }
  EXPECT_EQ(rebuilt, ids);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(mask[i], std::find(c.targets.begin(), c.targets.end(), ids[i]) != c.targets.end()) << i;
  EXPECT_NE(data::random_spans_noise_mask(100, 0.15, 3.0, 1), data::random_spans_noise_mask(100, 0.15, 3.0, 2));
}

}  // namespace
}  // namespace sculpt
