// SliceGPT's exact rotation of OPT's residual stream (compress/rotate.h) on the real OPT
// fixtures: any orthogonal Q leaves logits, losses and greedy generation unchanged (1e-4); a
// stream sliced to d dims is exactly the full rotation with the dropped coordinates zeroed in
// every writer (the packed and the masked model agree) and starts from the centred, projected
// embeddings; T5 v1.0 and v1.1 rotate exactly; post-LN OPT is refused with its reason.
#include "sculpt/compress/rotate.h"
#include "sculpt/core/error.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/hf_model.h"
#include "test_util.h"

namespace sculpt {
namespace {

models::Opt load_opt(const std::string& dir) {
  auto m = models::load_opt(dir);
  m->eval();
  return m;
}

torch::Tensor random_orthogonal(int64_t D, uint64_t seed) {
  torch::manual_seed(seed);
  return std::get<0>(torch::linalg_qr(torch::randn({D, D}, torch::kFloat64)));
}

// Two prompts, the second left-padded (OPT's convention), ids from the fixture's vocabulary.
models::Batch prompts() {
  models::Batch b;
  torch::manual_seed(3);
  b.input_ids = torch::randint(4, 1000, {2, 10});
  b.attention_mask = torch::ones({2, 10}, torch::kLong);
  b.input_ids[1].narrow(0, 0, 3).fill_(1);
  b.attention_mask[1].narrow(0, 0, 3).fill_(0);
  return b;
}

TEST(Rotate, AnyOrthogonalRotationOfPreLnOptIsExact) {
  for (const char* fixture : {"opt_causal_lm", "opt_seqcls"}) {
    SCULPT_REQUIRE_SHARED(dir, std::string("fixtures/hf/") + fixture);
    auto model = load_opt(dir);
    ASSERT_EQ(compress::rotation_problem(model->config), "");
    auto rotated = compress::rotate_opt(model, random_orthogonal(model->config.hidden_size, 11));
    auto b = prompts();
    auto labels = model->config.head == models::HeadType::sequence_classification ? torch::tensor({0, 1}) : b.input_ids;
    auto expected = model->forward(b.input_ids, b.attention_mask, labels);
    auto got = rotated->forward(b.input_ids, b.attention_mask, labels);
    EXPECT_TRUE(testing::all_close(got.logits, expected.logits, 1e-4, 1e-4)) << fixture;
    EXPECT_NEAR(got.loss.item<double>(), expected.loss.item<double>(), 1e-4) << fixture;
    // No norm affine is left and the head reads the rotated stream with the final norm's beta.
    EXPECT_FALSE(rotated->final_norm);
    EXPECT_EQ(rotated->config.rotated_norm_width, model->config.hidden_size);
    if (model->config.head == models::HeadType::causal_lm) {
      ASSERT_TRUE(rotated->lm_head);
      auto [ids, scores] = model->generate(b.input_ids, b.attention_mask, 6);
      auto [rids, rscores] = rotated->generate(b.input_ids, b.attention_mask, 6);
      EXPECT_TRUE(torch::equal(rids, ids)) << rids << "\n" << ids;
      EXPECT_TRUE(testing::all_close(rscores, scores, 1e-4, 1e-4));
    }
  }
}

TEST(Rotate, ASlicedStreamIsTheRotationWithTheDroppedCoordinatesZeroed) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/opt_causal_lm");
  auto model = load_opt(dir);
  const int64_t D = model->config.hidden_size, d = 40;
  std::vector<models::Batch> calibration = {prompts()};
  auto Q = compress::stream_pca(model, calibration);
  ASSERT_TRUE(torch::allclose(Q.t().matmul(Q), torch::eye(D, torch::kFloat64), 0, 1e-9));
  auto full = compress::rotate_opt(model, Q);
  auto sliced = compress::rotate_opt(model, Q, d);
  EXPECT_EQ(sliced->config.hidden_size, d);
  EXPECT_EQ(sliced->layers[0]->as<models::TransformerLayer>()->attn->q->weight.size(1), d);
  // The masked form: the full rotation with the writers' rows d..D zeroed, so those coordinates
  // of the stream stay 0 and the RMS norms over D see the same sum of squares.
  {
    torch::NoGradGuard g;
    auto drop = [&](torch::Tensor& t, int64_t dim) { t.narrow(dim, d, D - d).zero_(); };
    drop(full->embed_tokens->weight, 1);
    drop(full->embed_positions->weight, 1);
    for (auto& m : *full->layers) {
      auto* l = m->as<models::TransformerLayer>();
      drop(l->attn->o->weight, 0), drop(l->attn->o->bias, 0), drop(l->ffn->fc2->weight, 0), drop(l->ffn->fc2->bias, 0);
    }
  }
  auto b = prompts();
  auto masked = full->forward(b.input_ids, b.attention_mask, torch::Tensor());
  auto packed = sliced->forward(b.input_ids, b.attention_mask, torch::Tensor());
  EXPECT_TRUE(testing::all_close(packed.logits, masked.logits, 1e-5, 1e-5));
  // The sliced stream at the first block is the original's, centred and projected onto the top
  // d principal directions: (x - mean(x)) Q[:, :d].
  auto original = model->forward(b.input_ids, b.attention_mask, torch::Tensor(), {true, false});
  auto rotated = sliced->forward(b.input_ids, b.attention_mask, torch::Tensor(), {true, false});
  auto x0 = original.hidden_states[0].to(torch::kFloat64);
  auto projected = (x0 - x0.mean(-1, true)).matmul(Q.narrow(1, 0, d));
  EXPECT_TRUE(testing::all_close(rotated.hidden_states[0].to(torch::kFloat64), projected, 1e-5, 1e-5));
  // The sliced directory reloads as the same model.
  testing::TempDir tmp;
  models::save_opt(sliced, tmp.str());
  auto loaded = models::load_opt(tmp.str());
  loaded->eval();
  EXPECT_TRUE(torch::equal(loaded->forward(b.input_ids, b.attention_mask, torch::Tensor()).logits, packed.logits));
}

TEST(Rotate, AnyOrthogonalRotationOfT5IsExact) {
  // v1.0 (ReLU, tied head with the d_model^-0.5 scale) and v1.1 (gated GELU, own head).
  for (const char* fixture : {"t5_small", "t5_v1_1"}) {
    SCULPT_REQUIRE_SHARED(dir, std::string("fixtures/hf/") + fixture);
    auto model = models::load_t5(dir);
    model->eval();
    auto rotated = compress::rotate_t5(model, random_orthogonal(model->config.hidden_size, 12));
    auto b = prompts();
    auto ids = b.input_ids.remainder(model->config.vocab_size), labels = ids.narrow(1, 0, 5).contiguous();
    auto expected = model->forward(ids, b.attention_mask, torch::Tensor(), torch::Tensor(), labels);
    auto got = rotated->forward(ids, b.attention_mask, torch::Tensor(), torch::Tensor(), labels);
    EXPECT_TRUE(testing::all_close(got.logits, expected.logits, 1e-4, 1e-4)) << fixture;
    EXPECT_NEAR(got.loss.item<double>(), expected.loss.item<double>(), 1e-4) << fixture;
    EXPECT_TRUE(torch::equal(rotated->encoder->final_norm->weight, torch::ones_like(rotated->encoder->final_norm->weight)));
    auto [gen, scores] = model->generate(ids, b.attention_mask, 6);
    auto [rgen, rscores] = rotated->generate(ids, b.attention_mask, 6);
    EXPECT_TRUE(torch::equal(rgen, gen)) << fixture << "\n" << rgen << "\n" << gen;
    EXPECT_TRUE(testing::all_close(rscores, scores, 1e-4, 1e-4)) << fixture;
  }
}

TEST(Rotate, ASlicedT5IsTheRotationWithTheDroppedCoordinatesZeroed) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/t5_v1_1");
  auto model = models::load_t5(dir);
  model->eval();
  const int64_t D = model->config.hidden_size, d = 40;
  auto b = prompts();
  b.input_ids = b.input_ids.remainder(model->config.vocab_size);
  auto Q = compress::stream_pca(model, {b});
  ASSERT_TRUE(torch::allclose(Q.t().matmul(Q), torch::eye(D, torch::kFloat64), 0, 1e-9));
  auto full = compress::rotate_t5(model, Q);
  auto sliced = compress::rotate_t5(model, Q, d);
  EXPECT_EQ(sliced->config.hidden_size, d);
  EXPECT_EQ(sliced->config.rotated_norm_width, D);
  EXPECT_EQ(full->config.rotated_norm_width, 0);  // unsliced: a plain T5 again
  {  // the masked form: every writer's rows d..D zeroed in the full rotation
    torch::NoGradGuard g;
    full->shared->weight.narrow(1, d, D - d).zero_();
    for (auto* stack : {&full->encoder, &full->decoder})
      for (auto& m : *(*stack)->blocks) {
        auto* blk = m->as<models::T5Block>();
        blk->self_attn->o->weight.narrow(0, d, D - d).zero_();
        if (blk->cross_attn) blk->cross_attn->o->weight.narrow(0, d, D - d).zero_();
        blk->ffn->fc2->weight.narrow(0, d, D - d).zero_();
      }
  }
  auto labels = b.input_ids.narrow(1, 0, 5).contiguous();
  auto masked = full->forward(b.input_ids, b.attention_mask, torch::Tensor(), torch::Tensor(), labels);
  auto packed = sliced->forward(b.input_ids, b.attention_mask, torch::Tensor(), torch::Tensor(), labels);
  EXPECT_TRUE(testing::all_close(packed.logits, masked.logits, 1e-5, 1e-5));
  auto [gm, sm] = full->generate(b.input_ids, b.attention_mask, 5);
  auto [gp, sp] = sliced->generate(b.input_ids, b.attention_mask, 5);
  EXPECT_TRUE(torch::equal(gp, gm)) << gp << "\n" << gm;
  // The sliced directory's config carries the norm width back.
  auto c = models::t5_config_from_json(models::t5_config_to_json(sliced->config), "sliced");
  EXPECT_EQ(c.hidden_size, d);
  EXPECT_EQ(c.rotated_norm_width, D);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.scale_decoder_outputs);
}

TEST(Rotate, PostLnOptIsRefusedWithTheReason) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/opt_350m_style");
  auto model = load_opt(dir);
  const std::string problem = compress::rotation_problem(model->config);
  EXPECT_NE(problem.find("post-LayerNorm OPT"), std::string::npos) << problem;
  try {
    compress::rotate_opt(model, torch::eye(model->config.hidden_size, torch::kFloat64));
    ADD_FAILURE() << "a post-LN model was rotated";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be rotated exactly"), std::string::npos) << e.what();
  }
  SCULPT_REQUIRE_SHARED(pre, "fixtures/hf/opt_causal_lm");
  auto ok = load_opt(pre);
  auto not_orthogonal = torch::eye(ok->config.hidden_size, torch::kFloat64) * 2;
  EXPECT_THROW(compress::rotate_opt(ok, not_orthogonal), Error);
}

}  // namespace
}  // namespace sculpt
