// sculpt's fused AdamW against LibTorch's reference torch::optim::AdamW: the same updates
// (two groups, weight decay, a learning-rate change), the same checkpoint format, and a step
// skipped on the device.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "sculpt/train/optim.h"

namespace {

using torch::optim::AdamWOptions;

std::vector<torch::Tensor> make_params() {
  torch::manual_seed(3);
  return {torch::randn({4, 3}).requires_grad_(), torch::randn({5}).requires_grad_(), torch::randn({2, 2}).requires_grad_()};
}

std::vector<torch::optim::OptimizerParamGroup> groups(const std::vector<torch::Tensor>& p) {
  std::vector<torch::optim::OptimizerParamGroup> g;
  g.emplace_back(std::vector<torch::Tensor>{p[0], p[2]},
                 std::make_unique<AdamWOptions>(AdamWOptions(1e-2).betas({0.9, 0.98}).eps(1e-6).weight_decay(0.1)));
  g.emplace_back(std::vector<torch::Tensor>{p[1]}, std::make_unique<AdamWOptions>(AdamWOptions(3e-2).weight_decay(0.0)));
  return g;
}

void set_grads(const std::vector<torch::Tensor>& p, int step) {
  torch::manual_seed(100 + step);
  for (const auto& t : p) const_cast<torch::Tensor&>(t).mutable_grad() = torch::randn_like(t) * (step + 1);
}

void expect_same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-6, 1e-6)) << "parameter " << i;
}

TEST(FusedAdamW, EqualsTheReferenceUpdateAndCheckpoint) {
  auto pf = make_params(), pr = make_params();
  sculpt::train::FusedAdamW fused(groups(pf));
  torch::optim::AdamW reference(groups(pr));
  for (int step = 0; step < 6; ++step) {
    if (step == 3)  // a schedule change
      for (auto* opt : std::vector<torch::optim::Optimizer*>{&fused, &reference})
        static_cast<AdamWOptions&>(opt->param_groups()[0].options()).lr(5e-3);
    set_grads(pf, step), set_grads(pr, step);
    fused.step();
    reference.step();
    expect_same(pf, pr);
  }
  // The fused optimizer's checkpoint loads into the reference one and into a fresh fused one,
  // and all three continue alike.
  std::stringstream buffer;
  {
    torch::serialize::OutputArchive out;
    fused.save(out);
    out.save_to(buffer);
  }
  auto pl = make_params();
  for (size_t i = 0; i < pl.size(); ++i) pl[i].data().copy_(pf[i].data());
  sculpt::train::FusedAdamW loaded(groups(pl));
  {
    torch::serialize::InputArchive in;
    in.load_from(buffer);
    loaded.load(in);
  }
  for (int step = 6; step < 9; ++step) {
    set_grads(pf, step), set_grads(pr, step), set_grads(pl, step);
    fused.step();
    reference.step();
    loaded.step();
    expect_same(pf, pr);
    expect_same(pl, pr);
  }
  const auto& st = static_cast<torch::optim::AdamWParamState&>(*loaded.state().at(pl[0].unsafeGetTensorImpl()));
  EXPECT_EQ(st.step(), 9);
}

TEST(FusedAdamW, AFlaggedStepIsSkippedOnTheDevice) {
  auto p = make_params();
  sculpt::train::FusedAdamW opt(groups(p));
  set_grads(p, 0);
  opt.step();
  std::vector<torch::Tensor> before;
  for (const auto& t : p) before.push_back(t.detach().clone());
  set_grads(p, 1);
  opt.skip_step_if(torch::ones({}));
  opt.step();
  for (size_t i = 0; i < p.size(); ++i) EXPECT_TRUE(torch::equal(p[i].detach(), before[i])) << "parameter " << i;
  set_grads(p, 1);
  opt.step();  // the flag applies to one step only
  EXPECT_FALSE(torch::equal(p[0].detach(), before[0]));
}

TEST(ClipGradNorm, ScalesDownToTheMaxNormAndReturnsTheTotal) {
  auto a = torch::zeros({2}).requires_grad_(), b = torch::zeros({1}).requires_grad_();
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  auto total = sculpt::train::clip_grad_norm({a, b}, 1.0);
  EXPECT_NEAR(total.item<double>(), 5.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<double>(), 0.6, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 0.8, 1e-6);
  EXPECT_NEAR(sculpt::train::clip_grad_norm({a, b}, 10.0).item<double>(), 1.0, 1e-5);  // never scaled up
  EXPECT_NEAR(a.grad()[0].item<double>(), 0.6, 1e-6);
}

}  // namespace
