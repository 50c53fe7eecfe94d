// One-shot compressors (issue 13): scores on hand-set weights and activations, Taylor terms
// against autograd on the plain model, the allocation on hand-made scores, and the packed result
// against the original model with the removed units' weights zeroed by hand.
#include <torch/torch.h>

#include "sculpt/compress/allocation.h"
#include "sculpt/compress/one_shot.h"
#include "sculpt/compress/structure_scores.h"
#include "sculpt/core/error.h"
#include "sp3_test_models.h"
#include "test_util.h"

namespace sculpt {
namespace {

compress::Sp3Bert plain_student(models::Bert& t) {
  return compress::Sp3Bert(t, compress::StudentOptions{false, false, false});
}

models::Bert copy_of(models::Bert& t) {
  models::Bert c(t->config);
  torch::NoGradGuard g;
  auto src = t->named_parameters();
  for (auto& p : c->named_parameters()) p.value().copy_(src[p.key()]);
  c->eval();
  return c;
}

TEST(OneShot, AllocationRemovesTheLowestScoresGloballyPerLayerAndByBlock) {
  compress::StructureScores s;
  s.head = torch::tensor({{0.5, 0.1, 0.9}, {0.2, 0.8, 0.3}}, torch::kFloat64);
  s.ffn = torch::tensor({{4.0, 1.0, 3.0, 2.0}, {0.5, 6.0, 7.0, 8.0}}, torch::kFloat64);
  // Global, half: 3 of 6 heads (0.1, 0.2, 0.3) and 4 of 8 neurons (0.5, 1, 2, 3).
  auto g = compress::allocate(s, 0.5, {"units", "global"});
  EXPECT_TRUE(torch::equal(g.head, torch::tensor({{1.f, 0.f, 1.f}, {0.f, 1.f, 0.f}})));
  EXPECT_TRUE(torch::equal(g.ffn, torch::tensor({{1.f, 0.f, 0.f, 0.f}, {0.f, 1.f, 1.f, 1.f}})));
  EXPECT_FALSE(g.mha.defined());
  // Per layer, half: round(1.5) = 2 heads and 2 neurons from every layer.
  auto p = compress::allocate(s, 0.5, {"units", "per_layer"});
  EXPECT_TRUE(torch::equal(p.head, torch::tensor({{0.f, 0.f, 1.f}, {0.f, 1.f, 0.f}})));
  EXPECT_TRUE(torch::equal(p.ffn, torch::tensor({{1.f, 0.f, 1.f, 0.f}, {0.f, 0.f, 1.f, 1.f}})));
  // Equal scores: the earlier position goes first.
  compress::StructureScores flat{torch::ones({1, 4}, torch::kFloat64), torch::ones({1, 2}, torch::kFloat64), {}};
  EXPECT_TRUE(torch::equal(compress::allocate(flat, 0.5, {}).head, torch::tensor({{0.f, 0.f, 1.f, 1.f}})));
  // Blocks: a block scores its units' sum (heads 1.5 vs 1.3, FFN 10 vs 21.5); half of 2 = 1 each.
  auto b = compress::allocate(s, 0.5, {"blocks", "global"});
  EXPECT_TRUE(torch::equal(b.mha, torch::tensor({1.f, 0.f})));
  EXPECT_TRUE(torch::equal(b.ffn_layer, torch::tensor({0.f, 1.f})));
  EXPECT_FALSE(b.head.defined());
  EXPECT_THROW(compress::allocate(s, 1.5, {}), Error);
  EXPECT_THROW(compress::allocate(s, 0.5, {"blocks", "per_layer"}), Error);
  EXPECT_THROW(compress::allocate(s, 0.5, {"heads", "global"}), Error);
}

TEST(OneShot, CostsByParamsAndFlopsInClosedForm) {
  // L 2, D 16, H 4 x 4, F 24: matrices 2 (4 * 16 * 16 + 2 * 16 * 24) = 3584.
  compress::EncoderShape shape{2, 16, 4, 4, 24};
  EXPECT_DOUBLE_EQ(compress::dense_cost(shape, {"params", 0}), 3584.0);
  // FLOPs at T = 10: 2 T matrices + 2 L T^2 (qk + vo) = 71680 + 2 * 2 * 100 * 32 = 84480.
  EXPECT_DOUBLE_EQ(compress::dense_cost(shape, {"flops", 10}), 84480.0);
  EXPECT_THROW(compress::dense_cost(shape, {"bytes", 10}), Error);
  // A packed shape: layer 0 keeps 2 heads and 10 neurons, layer 1 no heads and 24 neurons.
  models::PackedBertConfig c;
  c.embedding_dim = 16;
  c.diagonal_residual = true;
  c.layers = {{16, 16, 2, 4, 4, 10}, {16, 16, 0, 4, 4, 24}};
  // Layer 0: 3 * 8 * 16 + 16 * 8 + 10 * 32 = 832; layer 1: 24 * 32 = 768.
  EXPECT_DOUBLE_EQ(compress::packed_cost(c, {"params", 0}), 1600.0);
  EXPECT_DOUBLE_EQ(compress::packed_cost(c, {"flops", 10}), 2 * 10 * 1600.0 + 2 * 100 * 16.0);
  // Full residual maps are matrix products and count (16 x 16 twice a layer).
  c.diagonal_residual = false;
  EXPECT_DOUBLE_EQ(compress::packed_cost(c, {"params", 0}), 1600.0 + 4 * 256);
}

TEST(OneShot, MagnitudeScoresAreEachUnitsSquaredWeights) {
  auto t = testing::tiny_teacher();
  auto student = plain_student(t);
  auto s = compress::magnitude_scores(student);
  auto* a = t->layers[1]->as<models::TransformerLayer>()->attn.get();
  auto* f = t->layers[1]->as<models::TransformerLayer>()->ffn.get();
  const int64_t h = 2, dh = 4, i = 7;
  double head = 0;
  for (auto* lin : {&a->q, &a->k, &a->v})
    head += (*lin)->weight.narrow(0, h * dh, dh).pow(2).sum().item<double>() + (*lin)->bias.narrow(0, h * dh, dh).pow(2).sum().item<double>();
  head += a->o->weight.narrow(1, h * dh, dh).pow(2).sum().item<double>();
  EXPECT_NEAR(s.head[1][h].item<double>(), head, 1e-5 * head);
  const double neuron = f->fc1->weight[i].pow(2).sum().item<double>() + f->fc1->bias[i].pow(2).item<double>() +
                        f->fc2->weight.select(1, i).pow(2).sum().item<double>();
  EXPECT_NEAR(s.ffn[1][i].item<double>(), neuron, 1e-5 * neuron);
}

TEST(OneShot, ActivationScoresOnConstantActivations) {
  // W_1 = 0 and W_v = 0 make every token's activations their biases: neuron i's mean |act| is
  // |gelu(b_i)|, its APoZ score [b_i > 0]; head h's mean |context| is mean_j |b_v[h, j]| (the
  // attention probabilities sum to 1).
  auto t = testing::tiny_teacher();
  {
    torch::NoGradGuard g;
    auto* layer = t->layers[0]->as<models::TransformerLayer>();
    layer->ffn->fc1->weight.zero_();
    layer->attn->v->weight.zero_();
  }
  auto student = plain_student(t);
  auto b = testing::tiny_batch();
  auto mean_abs = compress::activation_scores(student, {b}, "mean_abs");
  auto apoz = compress::activation_scores(student, {b}, "apoz");
  auto bias = t->layers[0]->as<models::TransformerLayer>()->ffn->fc1->bias.detach().to(torch::kFloat64);
  EXPECT_TRUE(torch::allclose(mean_abs.ffn[0], torch::gelu(bias).abs(), 1e-6, 1e-9));
  EXPECT_TRUE(torch::equal(apoz.ffn[0], (bias > 0).to(torch::kFloat64)));
  auto bv = t->layers[0]->as<models::TransformerLayer>()->attn->v->bias.detach().to(torch::kFloat64).view({4, 4});
  EXPECT_TRUE(torch::allclose(mean_abs.head[0], bv.abs().mean(1), 1e-5, 1e-8));
  EXPECT_TRUE(torch::equal(apoz.head, mean_abs.head));
  EXPECT_NE(mean_abs.source.find("over 24 tokens"), std::string::npos) << mean_abs.source;  // 9 + 9 + 6 real tokens
  EXPECT_THROW(compress::activation_scores(student, {b}, "median"), Error);
}

TEST(OneShot, TaylorScoresAreWeightTimesGradientOfThePlainModel) {
  auto t = testing::tiny_teacher();
  auto b = testing::tiny_batch();
  auto student = plain_student(t);
  auto s = compress::taylor_scores(student, {b});
  // The reference: autograd on the plain model itself.
  auto ref = copy_of(t);
  ref->forward(b).loss.backward();
  auto* a = ref->layers[0]->as<models::TransformerLayer>()->attn.get();
  auto* f = ref->layers[0]->as<models::TransformerLayer>()->ffn.get();
  auto wg = [](const torch::Tensor& w) { return (w * w.grad()).abs(); };
  const int64_t h = 1, dh = 4, i = 3;
  double head = 0;
  for (auto* lin : {&a->q, &a->k, &a->v})
    head += wg((*lin)->weight).narrow(0, h * dh, dh).sum().item<double>() + wg((*lin)->bias).narrow(0, h * dh, dh).sum().item<double>();
  head += wg(a->o->weight).narrow(1, h * dh, dh).sum().item<double>();
  EXPECT_NEAR(s.head[0][h].item<double>(), head, 1e-4 * head);
  const double neuron = wg(f->fc1->weight)[i].sum().item<double>() + wg(f->fc1->bias)[i].item<double>() +
                        wg(f->fc2->weight).select(1, i).sum().item<double>();
  EXPECT_NEAR(s.ffn[0][i].item<double>(), neuron, 1e-4 * neuron);
}

TEST(OneShot, TaylorOnAMaskedLmAveragesOverEveryMaskedToken) {
  models::TransformerConfig c;
  c.vocab_size = 50, c.hidden_size = 16, c.num_layers = 2, c.num_heads = 2, c.intermediate_size = 24, c.max_positions = 32;
  c.head = models::HeadType::masked_lm, c.with_pooler = false;
  c.hidden_dropout = c.attention_dropout = 0;
  torch::manual_seed(3);
  models::Bert mlm(c);
  mlm->init_weights();
  // Row 0 masks 1 token, row 1 masks 3: two one-row batches must score what one two-row batch
  // (the mean over all 4 masked tokens) scores, not the mean of the two batches' means.
  auto ids = torch::randint(5, 50, {2, 10});
  auto row = [&](int64_t r, std::vector<int64_t> at, int64_t offset) {
    models::Batch b;
    b.input_ids = ids.narrow(0, r, 1).clone();
    b.attention_mask = torch::ones({1, 10}, torch::kLong);
    b.token_type_ids = torch::zeros({1, 10}, torch::kLong);
    auto pos = torch::tensor(at);
    b.labels = b.input_ids.reshape(-1).index_select(0, pos);
    b.input_ids.view(-1).index_fill_(0, pos, 4);  // the mask id
    b.masked_positions = pos + offset;
    return b;
  };
  auto b0 = row(0, {2}, 0), b1 = row(1, {1, 5, 8}, 0);
  models::Batch both;
  both.input_ids = torch::cat({b0.input_ids, b1.input_ids});
  both.attention_mask = torch::ones({2, 10}, torch::kLong);
  both.token_type_ids = torch::zeros({2, 10}, torch::kLong);
  both.labels = torch::cat({b0.labels, b1.labels});
  both.masked_positions = torch::cat({b0.masked_positions, b1.masked_positions + 10});
  const auto split = compress::taylor_mlm_scores(mlm, {b0, b1}), joint = compress::taylor_mlm_scores(mlm, {both});
  EXPECT_TRUE(torch::allclose(split.head, joint.head, 1e-5, 1e-12)) << split.head << joint.head;
  EXPECT_TRUE(torch::allclose(split.ffn, joint.ffn, 1e-5, 1e-12));
  EXPECT_NE(split.source.find("masked-LM loss over 4 masked tokens of 2 examples"), std::string::npos) << split.source;
  // The reference for one head: autograd of the joint loss on the model itself.
  mlm->zero_grad();
  mlm->forward(both).loss.backward();
  auto* a = mlm->layers[1]->as<models::TransformerLayer>()->attn.get();
  auto wg = [](const torch::Tensor& w) { return (w * w.grad()).abs(); };
  double head = 0;
  for (auto* lin : {&a->q, &a->k, &a->v})
    head += wg((*lin)->weight).narrow(0, 8, 8).sum().item<double>() + wg((*lin)->bias).narrow(0, 8, 8).sum().item<double>();
  head += wg(a->o->weight).narrow(1, 8, 8).sum().item<double>();
  EXPECT_NEAR(joint.head[1][1].item<double>(), head, 1e-5 * head);
  // A classifier has no masked-LM loss.
  auto t = testing::tiny_teacher();
  EXPECT_THROW(compress::taylor_mlm_scores(t, {both}), Error);
}

// The original model with the removed heads' value rows and the removed neurons' W_2 columns
// zeroed computes what the packed model computes.
models::Bert zeroed_as(models::Bert& t, const torch::Tensor& head, const torch::Tensor& ffn) {
  auto m = copy_of(t);
  torch::NoGradGuard g;
  for (int64_t l = 0; l < head.size(0); ++l) {
    auto* layer = m->layers[static_cast<size_t>(l)]->as<models::TransformerLayer>();
    const int64_t dh = t->config.head_dim();
    for (int64_t h = 0; h < head.size(1); ++h)
      if (head[l][h].item<float>() == 0) {
        layer->attn->v->weight.narrow(0, h * dh, dh).zero_();
        layer->attn->v->bias.narrow(0, h * dh, dh).zero_();
      }
    layer->ffn->fc2->weight.mul_(ffn[l].unsqueeze(0));
  }
  return m;
}

TEST(OneShot, PrunedPackedModelEqualsTheOriginalWithTheUnitsZeroed) {
  auto t = testing::tiny_teacher();
  auto b = testing::tiny_batch();
  compress::PruneOneShotOptions o;
  o.method = "magnitude";
  o.target = 0.5;
  auto out = compress::prune_one_shot(t, {}, o);
  // The masks again, from the same scores, to zero the same units by hand.
  auto student = plain_student(t);
  auto masks = compress::allocate(compress::magnitude_scores(student), 0.5, {});
  auto expected = zeroed_as(t, masks.head, masks.ffn)->forward(b).logits;
  out.model->eval();
  auto got = out.model->forward(b).logits;
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-5)) << got << expected;
  // 4 of 8 heads and 24 of 48 neurons: exactly half the weight matrices, by either count.
  const auto& a = out.report["achieved"];
  EXPECT_DOUBLE_EQ(a["packed_sparsity"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(a["cost_remaining"].get<double>(), 0.5);
  EXPECT_EQ(out.report["method"], "magnitude");
  // At 0 nothing is removed and the packed model is the original.
  o.target = 0;
  auto same = compress::prune_one_shot(t, {}, o);
  same.model->eval();
  EXPECT_TRUE(torch::allclose(same.model->forward(b).logits, t->forward(b).logits, 1e-4, 1e-5));
  EXPECT_DOUBLE_EQ(same.report["achieved"]["packed_sparsity"].get<double>(), 0.0);
}

TEST(OneShot, BlockPruningDropsWholeBlocksAndTheirOutputBias) {
  auto t = testing::tiny_teacher();
  auto b = testing::tiny_batch();
  compress::PruneOneShotOptions o;
  o.target = 0.5;
  o.allocation = {"blocks", "global"};
  auto out = compress::prune_one_shot(t, {}, o);
  auto student = plain_student(t);
  auto masks = compress::allocate(compress::magnitude_scores(student), 0.5, o.allocation);
  // By hand: a removed attention block adds nothing (W_v, b_v and b_o zero); a removed FFN
  // block adds nothing (W_2, b_2 zero); the LayerNorms stay.
  auto m = copy_of(t);
  {
    torch::NoGradGuard g;
    for (int64_t l = 0; l < 2; ++l) {
      auto* layer = m->layers[static_cast<size_t>(l)]->as<models::TransformerLayer>();
      if (masks.mha[l].item<float>() == 0)
        for (auto* p : {&layer->attn->v->weight, &layer->attn->v->bias, &layer->attn->o->bias}) p->zero_();
      if (masks.ffn_layer[l].item<float>() == 0)
        for (auto* p : {&layer->ffn->fc2->weight, &layer->ffn->fc2->bias}) p->zero_();
    }
  }
  out.model->eval();
  EXPECT_TRUE(torch::allclose(out.model->forward(b).logits, m->forward(b).logits, 1e-4, 1e-5));
  EXPECT_EQ(out.model->config.layers[0].heads + out.model->config.layers[1].heads, 4);  // one attention block of two
  EXPECT_NEAR(out.report["achieved"]["packed_sparsity"].get<double>(), 0.5, 1e-12);
}

TEST(OneShot, SlicingNothingGivesTheOriginalModelAndSlicingKeepsTheRoundedWidth) {
  auto t = testing::tiny_teacher();
  auto b = testing::tiny_batch();
  std::vector<models::Batch> examples;
  for (int i = 0; i < 6; ++i) {
    models::Batch e;
    e.input_ids = torch::randint(5, 60, {1, 7 + i});
    e.attention_mask = torch::ones_like(e.input_ids);
    examples.push_back(e);
  }
  auto same = compress::slice_hidden(t, examples, {0.0, 8, {}});
  same.model->eval();
  EXPECT_TRUE(torch::allclose(same.model->forward(b).logits, t->forward(b).logits, 1e-4, 1e-4))
      << same.model->forward(b).logits << t->forward(b).logits;
  EXPECT_EQ(same.report["hidden_kept"], 16);
  // 30% of 16 = 11.2 kept dims, rounded down to a multiple of 4: 8 at every site.
  auto sliced = compress::slice_hidden(t, examples, {0.3, 4, {}});
  EXPECT_EQ(sliced.model->config.embedding_dim, 8);
  for (const auto& l : sliced.model->config.layers) EXPECT_TRUE(l.attn_dim == 8 && l.out_dim == 8);
  EXPECT_EQ(sliced.report["hidden_kept"], 8);
  EXPECT_THROW(compress::slice_hidden(t, examples, {1.0, 8, {}}), Error);
  EXPECT_THROW(compress::slice_hidden(t, examples, {0.9, 8, {}}), Error);  // 1.6 dims round to 0
}

}  // namespace
}  // namespace sculpt
