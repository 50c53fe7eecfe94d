// The SP3 student before any training: with every mask kept it computes exactly what the
// teacher computes; masks act where method.md §3.2 says; the mask set's expected size.
#include "sculpt/compress/sp3_bert.h"
#include "sculpt/core/error.h"
#include "sp3_test_models.h"
#include "test_util.h"

namespace sculpt {
namespace {

models::Bert teacher() { return testing::tiny_teacher(); }
models::Batch batch() { return testing::tiny_batch(); }

TEST(Sp3Student, AllKeptEqualsTheTeacher) {
  auto t = teacher();
  compress::Sp3Bert s(t, /*freeze_original=*/true);
  s->eval();
  auto b = batch();
  auto expected = t->forward(b, {true, false});
  auto got = s->forward(b, {}, true);
  EXPECT_TRUE(testing::all_close(got.logits, expected.logits, 1e-5, 1e-5));
  ASSERT_EQ(got.hidden_states.size(), expected.hidden_states.size());
  for (size_t i = 0; i < got.hidden_states.size(); ++i)
    EXPECT_TRUE(testing::all_close(got.hidden_states[i], expected.hidden_states[i], 1e-5, 1e-5)) << i;
  // Originals frozen, compactors trainable.
  auto params = s->named_parameters();
  EXPECT_FALSE(params["layers.0.attn.q.weight"].requires_grad());
  EXPECT_FALSE(params["embed.tok.weight"].requires_grad());
  EXPECT_TRUE(params["layers.0.cq.weight"].requires_grad());
  EXPECT_TRUE(params["sites.3.in.weight"].requires_grad());
}

TEST(Sp3Student, MasksActWhereTheMethodSays) {
  auto t = teacher();
  compress::Sp3Bert s(t, true);
  s->eval();
  auto b = batch();
  auto ones = [] {  // fresh tensors each time: Sp3Masks holds handles
    return compress::Sp3Masks{torch::ones({5, 16}), torch::ones({2, 16}), torch::ones({2, 16}), torch::ones({2, 4}),
                              torch::ones({2}),     torch::ones({2, 24}), torch::ones({2})};
  };
  auto last = [&](const compress::Sp3Masks& m) { return s->forward(b, m, true).hidden_states.back(); };
  auto dense = t->forward(b, {true, false}).hidden_states.back();
  EXPECT_TRUE(testing::all_close(last(ones()), dense, 1e-5, 1e-5));
  // Removing layer 1's attention and FFN blocks leaves LN(LN(x)): the output moves.
  auto off = ones();
  off.mha[1] = 0.0;
  off.ffn_layer[1] = 0.0;
  EXPECT_FALSE(testing::all_close(last(off), dense, 1e-2, 1e-2));
  // Masking every V/O head dim of a layer equals masking all its heads.
  auto no_vo = ones(), no_heads = ones();
  no_vo.vo[0].zero_();
  no_heads.head[0].zero_();
  EXPECT_TRUE(testing::all_close(last(no_vo), last(no_heads), 1e-5, 1e-5));
  EXPECT_FALSE(testing::all_close(last(no_vo), dense, 1e-2, 1e-2));
  // A hidden dim masked at a site is zero in that site's normalised output before out_comp.
  auto hid = ones();
  hid.hidden[4].narrow(0, 0, 8).zero_();
  EXPECT_FALSE(testing::all_close(last(hid), dense, 1e-2, 1e-2));
}

TEST(Sp3Student, MaskSetStartsFullyKeptAndCountsLikeTheMethod) {
  auto t = teacher();
  compress::Sp3MaskSet masks(t->config);
  auto remaining = compress::sp3_expected_remaining(masks->keep_probs(), masks->shape).item<double>();
  // D = 16, F = 24: (6*256 + 2*16*24) / (4*256 + 2*16*24) = 2304 / 1792
  EXPECT_NEAR(remaining, 2304.0 / 1792.0, 1e-4);
  masks->train();
  auto m = masks->sample_or_eval();
  EXPECT_EQ(m.qk.sizes(), (std::vector<int64_t>{2, 16}));  // 4 head dims tiled over 4 heads
  EXPECT_EQ(m.mha.sizes(), (std::vector<int64_t>{2}));
  compress::Sp3Bert s(t, true);
  s->train();
  auto out = s->forward(batch(), m);
  out.loss.backward();  // gradients reach the mask parameters
  EXPECT_TRUE(masks->hidden->log_alpha.grad().defined());
  EXPECT_TRUE(masks->head->log_alpha.grad().defined());
}

TEST(Sp3Student, MaskGroupsSwitchOnSeparately) {
  auto t = teacher();
  compress::Sp3MaskSet masks(t->config);
  EXPECT_EQ(masks->group(0).size(), 4u);  // hidden, qk, vo, ffn
  EXPECT_EQ(masks->group(1).size(), 3u);  // head, mha, ffn_layer
  {
    torch::NoGradGuard g;  // log alpha 0: samples strictly inside (0, 1), so they differ
    for (auto& p : masks->parameters()) p.zero_();
  }
  masks->train();
  masks->set_group_active(0, true);
  masks->set_group_active(1, false);
  // Active: fresh noise every call, with gradient; inactive: the deterministic mask, constant.
  auto a = masks->sample_or_eval(), b = masks->sample_or_eval();
  EXPECT_FALSE(torch::equal(a.hidden, b.hidden));
  EXPECT_TRUE(torch::equal(a.head, b.head));
  auto p = masks->keep_probs();
  EXPECT_TRUE(p.hidden.requires_grad());
  EXPECT_FALSE(p.head.requires_grad());  // counts in the size, gets no gradient
  EXPECT_FALSE(p.mha.requires_grad());
}

}  // namespace
}  // namespace sculpt

#include "sculpt/compress/pca.h"

namespace sculpt {
namespace {

// Unpadded one-example batches of lengths 6 .. 6 + spread - 1.
std::vector<models::Batch> single_examples(int n, uint64_t seed, int spread) {
  torch::manual_seed(seed);
  std::vector<models::Batch> out;
  for (int i = 0; i < n; ++i) {
    models::Batch b;
    b.input_ids = torch::randint(5, 60, {1, 6 + i % spread});
    out.push_back(b);
  }
  return out;
}

TEST(Sp3Pca, BasesAreOrthonormalAndKeepAttentionScoresAndValues) {
  auto t = teacher();
  compress::Sp3Bert s(t, true);
  auto examples = single_examples(40, 9, 8);
  compress::PcaOptions o;
  auto moments = compress::collect_sp3_moments(s, examples, o);
  EXPECT_EQ(moments.rows, 5 * (6 + 7 + 6 * 8));  // lengths 6..13, five each; min(T, 8) tokens taken
  auto before = s->forward(examples[0], {}, true).hidden_states;
  compress::init_sp3_from_pca(s, moments, o);
  auto params = s->named_parameters();
  // Sites 0..2 untouched; later sites rotated by an orthonormal basis, energy first.
  EXPECT_TRUE(torch::equal(params["sites.2.in.weight"], torch::eye(16)));
  auto W = params["sites.3.in.weight"];
  EXPECT_TRUE(testing::all_close(W.matmul(W.t()), torch::eye(16), 1e-5, 0));
  auto x = moments.site[3].to(torch::kFloat32);
  auto energy = torch::diag(W.matmul(x).matmul(W.t()));
  EXPECT_GE(energy[0].item<double>(), energy[15].item<double>());
  // q·k is unchanged (uᵀv = I per head) and C_o C_v = I.
  auto cq = params["layers.1.cq.weight"], ck = params["layers.1.ck.weight"];
  EXPECT_TRUE(testing::all_close(cq.t().matmul(ck), torch::eye(16), 1e-3, 1e-3));
  EXPECT_TRUE(testing::all_close(params["layers.0.co.weight"].matmul(params["layers.0.cv.weight"]), torch::eye(16), 1e-5, 0));
  // Paper mode is approximate (LayerNorm's centring does not commute with a rotation), but the
  // embedding site and layer 0's attention site are untouched, so the first state is exact.
  auto after = s->forward(examples[0], {}, true).hidden_states;
  EXPECT_TRUE(testing::all_close(after[0], before[0], 1e-5, 1e-5));
  // Layer 0 keeps its LN sites; only its (score- and value-preserving) compactors changed.
  EXPECT_TRUE(testing::all_close(after[1], before[1], 1e-3, 1e-3));
  // Past the skipped sites the rotated LayerNorm is only an approximation (method.md §3.3).
  EXPECT_FALSE(testing::all_close(after.back(), before.back(), 1e-4, 0));
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

TEST(Sp3Pca, ExactModeStudentEqualsTeacher) {
  auto t = teacher();
  compress::Sp3Bert s(t, true);
  auto examples = single_examples(30, 11, 1);
  compress::PcaOptions o;
  o.mode = "exact";
  compress::init_sp3_from_pca(s, compress::collect_sp3_moments(s, examples, o), o);
  s->eval();
  auto b = batch();
  auto params = s->named_parameters();
  // Every site is rotated (none skipped), yet the student computes the teacher's function.
  EXPECT_FALSE(testing::all_close(params["sites.0.in.weight"], torch::eye(16), 1e-3, 0));
  auto got = s->forward(b, {}, true), expected = t->forward(b, {true, false});
  EXPECT_TRUE(testing::all_close(got.logits, expected.logits, 1e-4, 1e-4));
  EXPECT_TRUE(testing::all_close(got.hidden_states.back(), expected.hidden_states.back(), 1e-4, 1e-4));
  compress::PcaOptions bad;
  bad.mode = "approximate";
  EXPECT_THROW(compress::init_sp3_from_pca(s, compress::collect_sp3_moments(s, examples, o), bad), Error);
}

}  // namespace
}  // namespace sculpt
