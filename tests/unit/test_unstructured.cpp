// Gradual magnitude pruning's schedule and masks (compress/unstructured.h), against hand
// computations of Zhu & Gupta's formula and of IntelLabs' k-th-value threshold.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "sculpt/compress/unstructured.h"
#include "sculpt/core/error.h"

namespace sculpt {
namespace {

using compress::GmpSchedule;
using compress::WeightMasks;

TEST(Gmp, CubicScheduleAtChosenSteps) {
  GmpSchedule s;
  s.initial = 0.0, s.final = 0.9, s.begin = 0, s.end = 100, s.every = 10;
  EXPECT_DOUBLE_EQ(s.sparsity_at(0), 0.0);
  EXPECT_DOUBLE_EQ(s.sparsity_at(50), 0.9 - 0.9 * 0.125);       // (1 - 1/2)^3
  EXPECT_DOUBLE_EQ(s.sparsity_at(25), 0.9 - 0.9 * 0.421875);    // (3/4)^3
  EXPECT_DOUBLE_EQ(s.sparsity_at(90), 0.9 - 0.9 * 0.001);       // (1/10)^3
  EXPECT_DOUBLE_EQ(s.sparsity_at(100), 0.9);
  EXPECT_DOUBLE_EQ(s.sparsity_at(500), 0.9);
  // From a nonzero start, between two later steps.
  GmpSchedule t;
  t.initial = 0.5, t.final = 0.85, t.begin = 20, t.end = 60, t.every = 4;
  EXPECT_DOUBLE_EQ(t.sparsity_at(10), 0.5);
  EXPECT_DOUBLE_EQ(t.sparsity_at(40), 0.85 + (0.5 - 0.85) * 0.125);
  EXPECT_DOUBLE_EQ(t.sparsity_at(30), 0.85 + (0.5 - 0.85) * 0.421875);
}

TEST(Gmp, PrunesOnTheGridAndAtTheEnd) {
  GmpSchedule s;
  s.begin = 5, s.end = 33, s.every = 10;
  std::vector<int64_t> steps;
  for (int64_t t = 0; t < 60; ++t)
    if (s.prunes_at(t)) steps.push_back(t);
  EXPECT_EQ(steps, (std::vector<int64_t>{5, 15, 25, 33}));
  EXPECT_DOUBLE_EQ(s.in_force_at(4), s.initial);
  EXPECT_DOUBLE_EQ(s.in_force_at(24), s.sparsity_at(15));
  EXPECT_DOUBLE_EQ(s.in_force_at(32), s.sparsity_at(25));
  EXPECT_DOUBLE_EQ(s.in_force_at(40), s.sparsity_at(33));
}

TEST(Gmp, UniformMasksPruneTheSmallestOfEachMatrix) {
  // k = floor(s n): s = 0.5 of 6 weights prunes 3 per matrix, by |w|.
  auto a = torch::tensor({{0.5f, -0.1f, 0.3f}, {-0.7f, 0.2f, 0.05f}});
  auto b = torch::tensor({{9.0f, 8.0f, -7.0f}, {6.0f, 5.0f, 4.0f}});
  WeightMasks m({{"a", a}, {"b", b}});
  m.prune_to(0.5, /*global=*/false);
  EXPECT_TRUE(torch::equal(a, torch::tensor({{0.5f, 0.0f, 0.3f}, {-0.7f, 0.0f, 0.0f}})));
  EXPECT_TRUE(torch::equal(b, torch::tensor({{9.0f, 8.0f, -7.0f}, {0.0f, 0.0f, 0.0f}})));
  EXPECT_DOUBLE_EQ(m.sparsity(), 0.5);
  // Later masks start from the zeros already there (the smallest magnitudes): sparsity only grows.
  m.prune_to(0.7, false);  // floor(4.2) = 4 per matrix
  EXPECT_TRUE(torch::equal(a, torch::tensor({{0.5f, 0.0f, 0.0f}, {-0.7f, 0.0f, 0.0f}})));
  EXPECT_TRUE(torch::equal(b, torch::tensor({{9.0f, 8.0f, 0.0f}, {0.0f, 0.0f, 0.0f}})));
}

TEST(Gmp, GlobalMasksShareOneThreshold) {
  auto a = torch::tensor({{0.5f, -0.1f, 0.3f}, {-0.7f, 0.2f, 0.05f}});
  auto b = torch::tensor({{9.0f, 8.0f, -7.0f}, {6.0f, 5.0f, 4.0f}});
  WeightMasks m({{"a", a}, {"b", b}});
  m.prune_to(0.5, /*global=*/true);  // the 6 smallest of 12 are all of a
  EXPECT_EQ(a.count_nonzero().item<int64_t>(), 0);
  EXPECT_EQ(b.count_nonzero().item<int64_t>(), 6);
  EXPECT_DOUBLE_EQ(m.sparsity(), 0.5);
}

TEST(Gmp, PrunedWeightsStayZeroThroughAdamUpdates) {
  torch::manual_seed(3);
  auto w = torch::randn({8, 8}, torch::requires_grad());
  torch::optim::AdamW opt({w}, torch::optim::AdamWOptions(0.1).weight_decay(0.01));
  // Momentum built up before pruning: the step right after it would move pruned weights.
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    (w * torch::arange(64).view({8, 8})).sum().backward();
    opt.step();
  }
  WeightMasks m({{"w", w}});
  m.mask_gradients();
  m.prune_to(0.75, false);
  const auto pattern = w.detach().ne(0).clone();
  EXPECT_EQ(pattern.sum().item<int64_t>(), 16);
  for (int i = 0; i < 5; ++i) {
    opt.zero_grad();
    (w * torch::arange(64).view({8, 8})).sum().backward();
    EXPECT_EQ(w.grad().masked_select(pattern.logical_not()).abs().sum().item<float>(), 0.0f) << "pruned weights get no gradient";
    opt.step();
    m.apply();
    EXPECT_TRUE(torch::equal(w.detach().ne(0), pattern)) << "update " << i;
  }
}

TEST(Gmp, PatternLockKeepsTheZerosAModelCameWith) {
  auto w = torch::tensor({{0.0f, 1.0f}, {2.0f, 0.0f}});
  auto m = WeightMasks::from_nonzeros({{"w", w}});
  EXPECT_DOUBLE_EQ(m.sparsity(), 0.5);
  w.detach().add_(1.0);
  m.apply();
  EXPECT_TRUE(torch::equal(w, torch::tensor({{0.0f, 2.0f}, {3.0f, 0.0f}})));
}

TEST(Gmp, MaskStateRoundTripsAndRefusesOtherShapes) {
  auto w = torch::tensor({{0.5f, -0.1f}, {0.3f, 0.05f}});
  WeightMasks m({{"enc.w", w}});
  m.prune_to(0.5, false);
  auto state = m.state();
  ASSERT_EQ(state.count("mask.enc.w"), 1u);
  EXPECT_EQ(state.at("mask.enc.w").scalar_type(), torch::kUInt8);
  WeightMasks fresh({{"enc.w", torch::ones({2, 2})}});
  fresh.load_state(state, "ckpt");
  EXPECT_TRUE(torch::equal(fresh.masks()[0], torch::tensor({{1.0f, 0.0f}, {1.0f, 0.0f}})));
  WeightMasks other({{"enc.w", torch::ones({3, 2})}});
  EXPECT_THROW(other.load_state(state, "ckpt"), Error);
  WeightMasks renamed({{"enc.v", torch::ones({2, 2})}});
  EXPECT_THROW(renamed.load_state(state, "ckpt"), Error);
}

}  // namespace
}  // namespace sculpt
