// Process placement (device per rank, threads per rank), the attention kernel switch and the
// packed LayerNorm's statistics.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "sculpt/core/dist_env.h"
#include "sculpt/core/error.h"
#include "sculpt/models/layers.h"
#include "sculpt/models/packed_bert.h"

namespace {

struct ScopedEnv {  // sets (or clears) variables for one test and restores them
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  void set(const std::string& name, const char* value) {
    const char* old = std::getenv(name.c_str());
    saved.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (value) setenv(name.c_str(), value, 1);
    else unsetenv(name.c_str());
  }
  ~ScopedEnv() {
    for (auto it = saved.rbegin(); it != saved.rend(); ++it)
      if (it->second) setenv(it->first.c_str(), it->second->c_str(), 1);
      else unsetenv(it->first.c_str());
  }
};

TEST(DistEnv, EachRankTakesTheGpuOfItsLocalRank) {
  sculpt::DistEnv e;
  e.rank = 13, e.world_size = 16, e.local_rank = 5, e.local_world_size = 8;
  EXPECT_EQ(sculpt::cuda_index_for_rank(e, 8), 5);
  try {
    sculpt::cuda_index_for_rank(e, 4);
    FAIL() << "a local rank beyond the GPUs must be refused";
  } catch (const sculpt::Error& err) {
    EXPECT_NE(std::string(err.what()).find("local rank 5 but this node has 4 GPU(s)"), std::string::npos) << err.what();
  }
  EXPECT_THROW(sculpt::cuda_index_for_rank(e, 0), sculpt::Error);
}

TEST(DistEnv, TorchrunAndSlurmGiveLocalWorldSize) {
  ScopedEnv env;
  for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                        "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"})
    env.set(v, nullptr);
  env.set("RANK", "3"), env.set("WORLD_SIZE", "8"), env.set("LOCAL_RANK", "1"), env.set("LOCAL_WORLD_SIZE", "4");
  auto t = sculpt::read_dist_env();
  EXPECT_EQ(t.launcher, "torchrun");
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.local_world_size, 4);
  env.set("RANK", nullptr), env.set("WORLD_SIZE", nullptr);
  env.set("SLURM_PROCID", "9"), env.set("SLURM_NTASKS", "16"), env.set("SLURM_LOCALID", "1"), env.set("SLURM_TASKS_PER_NODE", "8(x2)");
  auto s = sculpt::read_dist_env();
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 9);
  EXPECT_EQ(s.local_world_size, 8);
}

TEST(DistEnv, ThreadsPerRankFromTheLauncherElseCoresShared) {
  ScopedEnv env;
  for (const char* v : {"SCULPT_NUM_THREADS", "OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"}) env.set(v, nullptr);
  sculpt::DistEnv e;
  e.local_world_size = 8;
  EXPECT_EQ(sculpt::threads_for_rank(e, 64), 8);
  EXPECT_EQ(sculpt::threads_for_rank(e, 4), 1);  // never 0
  env.set("SLURM_CPUS_PER_TASK", "6");
  EXPECT_EQ(sculpt::threads_for_rank(e, 64), 6);
  env.set("OMP_NUM_THREADS", "3");
  EXPECT_EQ(sculpt::threads_for_rank(e, 64), 3);
  env.set("SCULPT_NUM_THREADS", "2");
  EXPECT_EQ(sculpt::threads_for_rank(e, 64), 2);
}

TEST(Attention, FusedKernelEqualsTheStepByStepPath) {
  torch::manual_seed(0);
  auto q = torch::randn({2, 3, 5, 8}), k = torch::randn({2, 3, 7, 8}), v = torch::randn({2, 3, 7, 6});
  auto mask = torch::ones({2, 7});
  mask[1].slice(0, 4).zero_();
  auto bias = sculpt::models::extended_attention_mask(mask, torch::kFloat) + torch::randn({1, 3, 5, 7});
  torch::Tensor probs;
  auto slow = sculpt::models::attend(q, k, v, bias, std::sqrt(8.0), 0.0, &probs);
  auto fast = sculpt::models::attend(q, k, v, bias, std::sqrt(8.0), 0.0);
  // The closed form, in fp64.
  auto want = torch::matmul(torch::softmax(torch::matmul(q.to(torch::kDouble), k.to(torch::kDouble).transpose(-1, -2)) / std::sqrt(8.0) +
                                               bias.to(torch::kDouble), -1),
                            v.to(torch::kDouble));
  EXPECT_TRUE(torch::allclose(slow.to(torch::kDouble), want, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(fast.to(torch::kDouble), want, 1e-5, 1e-5));
  EXPECT_NEAR(probs[1][0][0].slice(0, 0, 4).sum().item<double>(), 1.0, 1e-6);  // masked keys get nothing
  EXPECT_EQ(fast.sizes(), torch::IntArrayRef({2, 3, 5, 6}));
  // Value heads as wide as the query heads take SDPA's fused kernel on CPU (narrower ones, as
  // above, the plain softmax): the same closed form.
  auto v8 = torch::randn({2, 3, 7, 8});
  auto want8 = torch::matmul(torch::softmax(torch::matmul(q.to(torch::kDouble), k.to(torch::kDouble).transpose(-1, -2)) / std::sqrt(8.0) +
                                                bias.to(torch::kDouble), -1),
                             v8.to(torch::kDouble));
  EXPECT_TRUE(torch::allclose(sculpt::models::attend(q, k, v8, bias, std::sqrt(8.0), 0.0).to(torch::kDouble), want8, 1e-5, 1e-5));
  // A head with no q/k dims left: uniform over the unmasked keys.
  auto empty = sculpt::models::attend(q.slice(-1, 0, 0), k.slice(-1, 0, 0), v, sculpt::models::extended_attention_mask(mask, torch::kFloat), 1.0, 0.0);
  EXPECT_TRUE(torch::allclose(empty[1][0][0], v[1][0].slice(0, 0, 4).mean(0), 1e-5, 1e-6));
}

TEST(Dropout, KeepsOneMinusPScaledAndIsReproducible) {
  const double p = 0.1;
  auto x = torch::ones({4, 1000, 1001});  // odd count: the last element of the last pair
  torch::manual_seed(7);
  auto y = sculpt::models::dropout(x, p, true);
  // Every value is 0 or 1/(1-p); the kept fraction is 1-p within 4 standard deviations
  // (sqrt(p(1-p)/n) = 1.5e-4 for n = 4.004M).
  auto kept = (y != 0);
  EXPECT_TRUE(torch::allclose(y.masked_select(kept), torch::full({1}, 1.0 / (1 - p)).expand({kept.sum().item<int64_t>()})));
  EXPECT_NEAR(kept.to(torch::kDouble).mean().item<double>(), 1 - p, 6e-4);
  // Neighbouring elements (the two halves of one hash) and rows are not correlated.
  auto k = kept.to(torch::kDouble).reshape(-1);
  auto even = k.slice(0, 0, k.size(0) - 1, 2), odd = k.slice(0, 1, k.size(0), 2);
  const double cov = ((even - (1 - p)) * (odd - (1 - p))).mean().item<double>();
  EXPECT_NEAR(cov, 0.0, 4 * p * (1 - p) / std::sqrt(static_cast<double>(even.numel())));
  // Same seed, same mask; another draw, another mask; eval mode and p = 0 are the identity.
  torch::manual_seed(7);
  EXPECT_TRUE(torch::equal(sculpt::models::dropout(x, p, true), y));
  EXPECT_FALSE(torch::equal(sculpt::models::dropout(x, p, true), y));
  EXPECT_TRUE(torch::equal(sculpt::models::dropout(x, p, false), x));
  EXPECT_TRUE(torch::equal(sculpt::models::dropout(x, 0.0, true), x));
  // The gradient is the mask; bf16 stays bf16.
  auto a = torch::randn({64, 33}).requires_grad_();
  torch::manual_seed(3);
  auto out = sculpt::models::dropout(a, 0.5, true);
  out.sum().backward();
  EXPECT_TRUE(torch::equal(a.grad(), (out != 0).to(torch::kFloat) * 2.0));
  EXPECT_EQ(sculpt::models::dropout(a.detach().to(torch::kBFloat16), 0.5, true).scalar_type(), torch::kBFloat16);
}

TEST(PackedNorm, LargeMeanSmallSpreadMatchesFp64) {
  // Mean 100, spread 0.1 (CoFi mode: statistics over the kept dims): E[x²] - mean² loses
  // about 8% of the variance to fp32 rounding (and can go negative); two passes keep it.
  auto x = torch::tensor({{100.0f, 100.1f, 99.9f, 100.2f}});
  auto w = torch::ones({4}), b = torch::zeros({4});
  auto got = sculpt::models::packed_norm(x, w, b, /*width=*/0, 1e-12, false);
  auto xd = x.to(torch::kDouble);
  auto mean = xd.mean(-1, true), var = (xd - mean).pow(2).mean(-1, true);
  auto want = (xd - mean) / torch::sqrt(var + 1e-12);
  EXPECT_TRUE(torch::allclose(got.to(torch::kDouble), want, 1e-3, 1e-3)) << got << want;
  // Over a wider original width (4 removed dims as zeros): the closed form with the zeros.
  auto full = torch::zeros({1, 8}, torch::kDouble);
  full.slice(1, 0, 4).copy_(xd);
  auto fm = full.mean(-1, true), fv = (full - fm).pow(2).mean(-1, true);
  EXPECT_TRUE(torch::allclose(sculpt::models::packed_norm(x, w, b, 8, 1e-12, false).to(torch::kDouble),
                              ((full - fm) / torch::sqrt(fv + 1e-12)).slice(1, 0, 4), 1e-5, 1e-5));
  // bf16 input (autocast): statistics in fp32, output fp32, finite.
  auto y = sculpt::models::packed_norm(x.to(torch::kBFloat16), w, b, 0, 1e-12, false);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
}

}  // namespace
