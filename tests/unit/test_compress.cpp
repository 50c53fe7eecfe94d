// Hard-concrete masks, sparsity accounting, the Lagrangian and distillation losses, checked
// against hand-computed values.
#include <cmath>
#include <limits>
#include <set>

#include "sculpt/compress/distill.h"
#include "sculpt/compress/hard_concrete.h"
#include "sculpt/compress/lagrangian.h"
#include "sculpt/compress/sparsity.h"
#include "sculpt/train/distill_loss.h"
#include "test_util.h"

namespace sculpt {
namespace {

TEST(HardConcrete, KeepProbabilityAndLimits) {
  compress::HardConcrete m(1, 4);
  torch::NoGradGuard g;
  m->log_alpha.copy_(torch::tensor({{10.0f, 0.0f, -1.5986f, -20.0f}}));
  auto p = m->keep_prob();
  // L = sigmoid(log_alpha + beta ln 11), beta ln 11 = 1.59865
  EXPECT_NEAR(p[0][1].item<double>(), 1.0 / (1.0 + std::exp(-(2.0 / 3.0) * std::log(11.0))), 1e-6);
  EXPECT_NEAR(p[0][2].item<double>(), 0.5, 1e-4);
  EXPECT_NEAR(p[0][3].item<double>(), 1e-6, 1e-9);  // clamped to eps
  std::vector<torch::Tensor> draws;
  for (int i = 0; i < 4000; ++i) draws.push_back(m->sample());
  auto all = torch::cat(draws);
  EXPECT_GE(all.min().item<double>(), 0.0);
  EXPECT_LE(all.max().item<double>(), 1.0);
  auto nonzero = (all > 0).to(torch::kFloat).mean(0);  // empirical P(z > 0) matches L
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(nonzero[j].item<double>(), p[0][j].item<double>(), 0.03) << j;
}

TEST(HardConcrete, TiledMaskDrawsNoisePerPositionFromSharedLogAlpha) {
  // Head-dim masks: 2 layers x 4 dims, tiled over 3 heads. Training noise is drawn for all 12
  // positions (each head its own sample, as SP3), from the one log alpha per dim.
  compress::HardConcreteOptions o;
  o.repeat = 3;
  compress::HardConcrete m(2, 4, o);
  torch::NoGradGuard no_grad;
  m->log_alpha.copy_(torch::tensor({{0.0, 0.5, -0.5, 1.0}, {0.2, -0.2, 0.0, 0.3}}));
  torch::manual_seed(11);
  auto z = m->sample();
  torch::manual_seed(11);
  auto u = torch::empty({2, 12}).uniform_(o.eps, 1 - o.eps);
  auto la = m->log_alpha.repeat({1, 3});
  auto want = (torch::sigmoid((torch::log(u) - torch::log(1 - u) + la) / o.beta) * 1.2 - 0.1).clamp(0.0, 1.0);
  ASSERT_EQ(z.sizes(), (std::vector<int64_t>{2, 12}));
  EXPECT_TRUE(torch::allclose(z, want, 0, 1e-6));
  EXPECT_FALSE(torch::equal(z.slice(1, 0, 4), z.slice(1, 4, 8)));  // the heads differ
  // The eval mask is the same dims in every head.
  auto d = m->deterministic();
  EXPECT_TRUE(torch::equal(d.slice(1, 0, 4), d.slice(1, 8, 12)));
}

TEST(HardConcrete, DeterministicKeepsTopExpectedCountWithSoftValues) {
  compress::HardConcrete m(2, 4);
  {
    torch::NoGradGuard g;
    m->log_alpha.copy_(torch::tensor({{10.0f, 3.0f, -10.0f, -10.0f}, {10.0f, 10.0f, 10.0f, 10.0f}}));
  }
  auto z = m->deterministic();
  // Row 0: sum L ~ 1 + 0.99 + 0 + 0 -> round(4 - 1.99) = 2 zeros: the two smallest.
  EXPECT_EQ((z[0] == 0).sum().item<int64_t>(), 2);
  EXPECT_GT(z[0][1].item<double>(), 0.97);
  EXPECT_NEAR(z[0][1].item<double>(), 1.0 / (1.0 + std::exp(-0.8 * 3.0 / (2.0 / 3.0))), 1e-6);  // soft value kept
  EXPECT_EQ((z[1] == 0).sum().item<int64_t>(), 0);
  m->eval();
  EXPECT_TRUE(torch::equal(m->forward(), z));
  EXPECT_FALSE(m->forward().requires_grad());
  compress::HardConcreteOptions tiled;
  tiled.repeat = 3;
  EXPECT_EQ(compress::HardConcrete(2, 4, tiled)->sample().sizes(), (std::vector<int64_t>{2, 12}));
}

compress::Sp3KeepProbs all_kept(const compress::EncoderShape& s) {
  auto ones = [](std::vector<int64_t> shape) { return torch::ones(shape, torch::kDouble); };
  return {ones({2 * s.layers + 1, s.hidden}), ones({s.layers, s.head_dim}), ones({s.layers, s.head_dim}),
          ones({s.layers, s.heads}),          ones({s.layers}),             ones({s.layers, s.ffn}),
          ones({s.layers})};
}

TEST(Sparsity, Sp3AllKeptIsFourteenTwelfthsForBertBase) {
  compress::EncoderShape bert;
  EXPECT_DOUBLE_EQ(compress::sp3_dense_params(bert), 84934656.0);
  EXPECT_NEAR(compress::sp3_expected_remaining(all_kept(bert), bert).item<double>(), 14.0 / 12.0, 1e-12);
}

TEST(Sparsity, Sp3HandComputedSmallConfig) {
  // One layer, D = 4, H = 2, d_head = 2, F = 8. Dense: 4*16 + 2*4*8 = 128.
  compress::EncoderShape s{1, 4, 2, 2, 8};
  auto p = all_kept(s);
  p.hidden[1].fill_(0.5);  // attention LN site keeps 2 of 4 in expectation
  p.head[0][1] = 0.0;      // one head gone
  p.ffn[0].narrow(0, 0, 4).fill_(0.0);  // half the FFN
  // h0 = 4, h1 = 2, h2 = 4; heads = 1; qk = vo = 2 per head -> 2.
  // Q,K: 2*4*2 = 16; V: 4*2 = 8; O: 2*2 = 4; FFN: (2 + 4) * 4 = 24; residual: 4*2 + 2*4 = 16 -> 68.
  EXPECT_DOUBLE_EQ(compress::sp3_expected_params(p).item<double>(), 68.0);
  EXPECT_DOUBLE_EQ(compress::sp3_expected_remaining(p, s).item<double>(), 68.0 / 128.0);
  // Differentiable in the probabilities.
  auto h = p.hidden.clone().requires_grad_(true);
  p.hidden = h;
  compress::sp3_expected_params(p).backward();
  EXPECT_TRUE(h.grad().defined());
}

TEST(Sparsity, CofiCountsForBertBaseAndSmallConfig) {
  compress::EncoderShape bert;
  EXPECT_DOUBLE_EQ(compress::cofi_prunable_params(bert), 85017600.0);
  auto ones = [](std::vector<int64_t> shape) { return torch::ones(shape, torch::kDouble); };
  compress::CofiKeepProbs kept{ones({768}), ones({12, 12}), ones({12}), ones({12, 3072}), ones({12})};
  // All kept: only the 5D biases/LN per layer's FFN part are not in E[size].
  EXPECT_NEAR(compress::cofi_expected_sparsity(kept, bert).item<double>(), 12.0 * 5 * 768 / 85017600.0, 1e-12);
  // Small: L=1, D=4, H=2, F=8; hidden keeps 2, one head, FFN half.
  compress::EncoderShape s{1, 4, 2, 2, 8};
  compress::CofiKeepProbs p{torch::tensor({1.0, 1.0, 0.0, 0.0}, torch::kDouble), torch::tensor({{1.0, 0.0}}, torch::kDouble),
                            ones({1}), torch::tensor({{1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0}}, torch::kDouble), ones({1})};
  // heads: 2 * 1 * (4*16 + 16)/(2*4) = 20; ffn: 2 * 2 * 4 = 16 -> 36; M = (64+16) + (64+4+16) = 164.
  EXPECT_DOUBLE_EQ(compress::cofi_expected_params(p, s).item<double>(), 36.0);
  EXPECT_DOUBLE_EQ(compress::cofi_expected_sparsity(p, s).item<double>(), 1.0 - 36.0 / 164.0);
}

TEST(Lagrangian, ValueAscentAndRamp) {
  compress::Lagrangian lag;
  {
    torch::NoGradGuard g;
    lag->lambda1.fill_(2.0);
    lag->lambda2.fill_(3.0);
  }
  auto s = torch::tensor(0.5, torch::requires_grad());
  auto v = lag->forward(s, 0.1);  // 2*0.4 + 3*0.16
  EXPECT_NEAR(v.item<double>(), 0.8 + 0.48, 1e-6);
  v.backward();
  EXPECT_NEAR(lag->lambda1.grad().item<double>(), 0.4, 1e-6);
  lag->flip_gradients();  // ascent: the optimizer's descent step now increases lambda1
  EXPECT_NEAR(lag->lambda1.grad().item<double>(), -0.4, 1e-6);
  EXPECT_DOUBLE_EQ(compress::target_at(0, 10, 100, 1.16, 0.06), 1.16);
  EXPECT_DOUBLE_EQ(compress::target_at(60, 10, 100, 1.16, 0.06), 1.16 + (0.06 - 1.16) * 0.5);
  EXPECT_DOUBLE_EQ(compress::target_at(500, 10, 100, 1.16, 0.06), 0.06);
  compress::Lagrangian absolute(true);
  EXPECT_NEAR(absolute->forward(torch::tensor(0.0), 0.1).item<double>(), 0.0, 1e-12);
}

TEST(Distill, KlAtTemperatureAndRegressionMse) {
  auto s = torch::tensor({{1.0, 2.0, 3.0}}, torch::kDouble), t = torch::tensor({{3.0, 1.0, 0.0}}, torch::kDouble);
  auto ps = torch::softmax(s / 2, -1), pt = torch::softmax(t / 2, -1);
  double expected = (pt * (pt.log() - ps.log())).sum().item<double>();
  EXPECT_NEAR(compress::logits_kl(s, t, 2.0, false).item<double>(), expected, 1e-12);
  EXPECT_NEAR(compress::logits_kl(s, t, 2.0, true).item<double>(), 4 * expected, 1e-12);
  EXPECT_NEAR(compress::logits_kl(t, t, 2.0, false).item<double>(), 0.0, 1e-12);
  auto r = compress::prediction_distill(torch::tensor({{1.0}, {2.0}}), torch::tensor({{2.0}, {2.0}}), 2.0, false);
  EXPECT_NEAR(r.item<double>(), 0.5, 1e-6);  // one logit: MSE, not a KL that is always 0
}

TEST(Distill, TokenLogitsAverageTheKlOverRealTokensOnly) {
  // [B 2, T 2, V 3] with the last token of row 1 padding: the mean of the three real tokens' KLs
  // at T = 2, each by hand; what distill_loss takes for a masked LM's every-position logits.
  auto s = torch::tensor({{{1.0, 2.0, 3.0}, {0.0, 0.0, 1.0}}, {{2.0, -1.0, 0.5}, {9.0, 9.0, -9.0}}}, torch::kDouble);
  auto t = torch::tensor({{{3.0, 1.0, 0.0}, {1.0, 0.0, 0.0}}, {{0.0, 0.0, 0.0}, {-9.0, 9.0, 9.0}}}, torch::kDouble);
  auto mask = torch::tensor({{1, 1}, {1, 0}}, torch::kLong);
  auto kl = [&](int b, int i) {
    auto ps = torch::softmax(s[b][i] / 2, -1), pt = torch::softmax(t[b][i] / 2, -1);
    return (pt * (pt.log() - ps.log())).sum().item<double>();
  };
  const double expected = (kl(0, 0) + kl(0, 1) + kl(1, 0)) / 3;
  EXPECT_NEAR(compress::masked_logits_kl(s, t, mask, 2.0, false).item<double>(), expected, 1e-12);
  EXPECT_NEAR(compress::masked_logits_kl(s, t, mask, 2.0, true).item<double>(), 4 * expected, 1e-12);
  models::ModelOutput so, to;
  so.logits = s, to.logits = t;
  recipe::DistillSection d;
  d.pred_weight = 1, d.layer_weight = 0, d.temperature = 2;
  EXPECT_NEAR(train::distill_loss(so, {}, to, mask, d).loss.item<double>(), expected, 1e-12);
}

TEST(Distill, SpanKlsAreSummedAsSp3OrAveragedAsCofi) {
  // SQuAD: SP3's code adds KL(start) and KL(end); CoFi's (and Intel's) halves the sum.
  models::ModelOutput s, t;
  s.start_logits = torch::tensor({{1.0, 2.0, 3.0}}, torch::kDouble), s.end_logits = torch::tensor({{0.0, 0.5, -1.0}}, torch::kDouble);
  t.start_logits = torch::tensor({{3.0, 1.0, 0.0}}, torch::kDouble), t.end_logits = torch::tensor({{2.0, 0.0, 0.0}}, torch::kDouble);
  auto kl = [](const torch::Tensor& a, const torch::Tensor& b) {  // KL(teacher b || student a) at T = 2, by hand
    auto pa = torch::softmax(a / 2, -1), pb = torch::softmax(b / 2, -1);
    return (pb * (pb.log() - pa.log())).sum().item<double>();
  };
  const double both = kl(s.start_logits, t.start_logits) + kl(s.end_logits, t.end_logits);
  recipe::DistillSection d;
  d.pred_weight = 1, d.layer_weight = 0, d.temperature = 2;
  d.span_kl = "sum";
  EXPECT_NEAR(train::distill_loss(s, {}, t, {}, d).loss.item<double>(), both, 1e-12);
  d.span_kl = "mean";
  EXPECT_NEAR(train::distill_loss(s, {}, t, {}, d).loss.item<double>(), both / 2, 1e-12);
}

TEST(Distill, LayerMatchingSkipsPaddingAndLooksForward) {
  torch::manual_seed(0);
  std::vector<torch::Tensor> teacher;
  for (int j = 0; j < 4; ++j) teacher.push_back(torch::randn({2, 3, 5}));
  auto mask = torch::tensor({{1, 1, 0}, {1, 0, 0}});
  // Student states equal to teacher states 1, 1, 0: each matches the closest j >= i, so the
  // third (i = 2) cannot go back to teacher 0.
  std::vector<torch::Tensor> student = {teacher[1].clone(), teacher[1].clone(), teacher[0].clone()};
  student[0].select(1, 2).fill_(100.0);  // a padded position: must not matter
  auto d = compress::layer_distill(student, teacher, mask);
  EXPECT_EQ(d.match[0].item<int64_t>(), 1);
  EXPECT_EQ(d.match[1].item<int64_t>(), 1);
  EXPECT_GE(d.match[2].item<int64_t>(), 2);
  auto exact = compress::layer_distill({student[0], student[1]}, teacher, mask);
  EXPECT_NEAR(exact.loss.item<double>(), 0.0, 1e-12);  // padding excluded, exact matches
  // The MSE is over the 3 real tokens and 5 features, by hand.
  auto diff = (teacher[0] - teacher[2]).pow(2);
  double by_hand = (diff[0][0].sum() + diff[0][1].sum() + diff[1][0].sum()).item<double>() / 15;
  EXPECT_NEAR(compress::masked_mse(teacher[0], teacher[2], mask).item<double>(), by_hand, 1e-6);
  // The loss has gradient for the student.
  auto x = teacher[0].clone().requires_grad_(true);
  auto d2 = compress::layer_distill({x}, teacher, mask);
  d2.loss.backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_EQ(d2.match[0].item<int64_t>(), 0);
}

// Nodes of a given kind in a loss's autograd graph.
int count_nodes(const torch::Tensor& loss, const std::string& name) {
  std::vector<torch::autograd::Node*> stack{loss.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  int n = 0;
  while (!stack.empty()) {
    auto* node = stack.back();
    stack.pop_back();
    if (!node || !seen.insert(node).second) continue;
    n += node->name() == name;
    for (const auto& e : node->next_edges()) stack.push_back(e.function.get());
  }
  return n;
}

TEST(Distill, LayerMatchingKeepsGraphsOfTheChosenPairsOnly) {
  // 3 student states against 4 teacher states: SP3 compares 4 + 3 + 2 = 9 pairs, but only the
  // 3 chosen losses may carry a graph (one squared difference each), and the values and the
  // gradient are those of the chosen pairs.
  torch::manual_seed(3);
  std::vector<torch::Tensor> teacher, student;
  for (int j = 0; j < 4; ++j) teacher.push_back(torch::randn({2, 3, 5}));
  for (int i = 0; i < 3; ++i) student.push_back(torch::randn({2, 3, 5}).requires_grad_(true));
  auto mask = torch::tensor({{1, 1, 0}, {1, 1, 1}});
  auto d = compress::layer_distill(student, teacher, mask);
  EXPECT_EQ(count_nodes(d.loss, "PowBackward0"), 3);
  torch::Tensor expected = torch::zeros({});
  for (int i = 0; i < 3; ++i) {
    const int64_t j = d.match[i].item<int64_t>();
    EXPECT_GE(j, i);
    double best = std::numeric_limits<double>::infinity();
    for (int k = i; k < 4; ++k) best = std::min(best, compress::masked_mse(student[i], teacher[k], mask).item<double>());
    EXPECT_DOUBLE_EQ(compress::masked_mse(student[i], teacher[j], mask).item<double>(), best);
    expected = expected + compress::masked_mse(student[i], teacher[j], mask);
  }
  EXPECT_NEAR(d.loss.item<double>(), expected.item<double>(), 1e-6);
  auto g = torch::autograd::grad({d.loss}, {student[1]})[0];
  auto ge = torch::autograd::grad({expected}, {student[1]})[0];
  EXPECT_TRUE(torch::allclose(g, ge));
  // CoFi: 4 teacher layers over 3 student layers, one graph per teacher layer.
  std::vector<torch::Tensor> cofi_student = {student[0], student[0], student[1], student[2]};
  std::vector<torch::Tensor> cofi_teacher = {teacher[0], teacher[0], teacher[1], teacher[2], teacher[3]};
  EXPECT_EQ(count_nodes(compress::cofi_layer_distill(cofi_student, cofi_teacher, mask).loss, "PowBackward0"), 4);
}

TEST(Distill, CofiMatchesTopDownStrictlyBelow) {
  EXPECT_EQ(compress::cofi_teacher_layers(12), (std::vector<int64_t>{3, 6, 9, 12}));
  EXPECT_EQ(compress::cofi_teacher_layers(2), (std::vector<int64_t>{1, 2}));
  torch::manual_seed(1);
  std::vector<torch::Tensor> teacher;
  for (int j = 0; j <= 4; ++j) teacher.push_back(torch::randn({2, 3, 5}));
  auto mask = torch::ones({2, 3});
  auto match = [&](std::vector<int> which) {  // student layer s = teacher layer which[s - 1]
    std::vector<torch::Tensor> student = {teacher[0]};
    for (int w : which) student.push_back(teacher[static_cast<size_t>(w)].clone());
    auto d = compress::cofi_layer_distill(student, teacher, mask);
    return std::vector<int64_t>(d.match.data_ptr<int64_t>(), d.match.data_ptr<int64_t>() + 4);
  };
  // L = 4: teacher layers 1..4. Student equal to the teacher: each matches itself, loss 0.
  EXPECT_EQ(match({1, 2, 3, 4}), (std::vector<int64_t>{1, 2, 3, 4}));
  // Teacher 4 goes first and takes student 2; teacher 3 may only look below it (student 1);
  // teachers 2 and 1 have nothing left below and keep the last match, as CoFi does.
  EXPECT_EQ(match({1, 4, 3, 2}), (std::vector<int64_t>{1, 1, 1, 2}));
  // CoFi's layer-existence filter: student layer 3 has no block left, so teacher 3 (whose
  // copy it is) takes the next-best existing layer below 4; the rest follow below that.
  std::vector<torch::Tensor> student = {teacher[0]};
  for (int w : {1, 2, 3, 4}) student.push_back(teacher[static_cast<size_t>(w)].clone());
  auto costs = [&](int64_t s, int64_t j) { return compress::masked_mse(student[static_cast<size_t>(s)], teacher[static_cast<size_t>(j)], mask).item<double>(); };
  const int64_t second = costs(1, 3) < costs(2, 3) ? 1 : 2;  // the cheaper existing layer below 4 for teacher 3
  auto d = compress::cofi_layer_distill(student, teacher, mask, torch::tensor({1.0f, 1.0f, 0.0f, 1.0f}));
  auto got = std::vector<int64_t>(d.match.data_ptr<int64_t>(), d.match.data_ptr<int64_t>() + 4);
  EXPECT_EQ(got[3], 4);
  EXPECT_EQ(got[2], second);
  EXPECT_NE(got[2], 3);
  // Without the filter, teacher 3 matches its own copy.
  auto unfiltered = compress::cofi_layer_distill(student, teacher, mask);
  EXPECT_EQ(unfiltered.match[2].item<int64_t>(), 3);
}

TEST(Lagrangian, AntiWindupZeroesLambda1OnlyWhenItPushesPastTheTarget) {
  compress::Lagrangian lag;
  auto set = [&](double l1) {
    torch::NoGradGuard g;
    lag->lambda1.fill_(l1);
  };
  // s = 0.4 below t = 0.5 with lambda1 > 0: the linear term (gradient lambda1 on s) pushes s
  // further down, past the target: wound up, projected to 0.
  set(2.0);
  lag->project(torch::tensor(0.4), 0.5);
  EXPECT_EQ(lag->lambda1.item<double>(), 0.0);
  // s above t with lambda1 > 0 pushes s down towards t: kept.
  set(2.0);
  lag->project(torch::tensor(0.6), 0.5);
  EXPECT_EQ(lag->lambda1.item<double>(), 2.0);
  // lambda1 < 0 below the target pushes s up, towards it: kept; above it: projected.
  set(-1.5);
  lag->project(torch::tensor(0.4), 0.5);
  EXPECT_EQ(lag->lambda1.item<double>(), -1.5);
  lag->project(torch::tensor(0.7), 0.5);
  EXPECT_EQ(lag->lambda1.item<double>(), 0.0);
  // |s - t| (absolute): lambda1 always pulls towards the target, nothing to project.
  compress::Lagrangian abs_lag(true);
  {
    torch::NoGradGuard g;
    abs_lag->lambda1.fill_(3.0);
  }
  abs_lag->project(torch::tensor(0.4), 0.5);
  EXPECT_EQ(abs_lag->lambda1.item<double>(), 3.0);
}

}  // namespace
}  // namespace sculpt
