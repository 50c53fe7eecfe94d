// CUDA checks: the same model on the GPU as on the CPU, bf16 autocast on the GPU, the device
// each rank binds. Each test skips when no GPU is found; CI lets only these skip.
#include <gtest/gtest.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "sculpt/compress/quantize.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/int8_linear.h"
#include "sculpt/models/layers.h"
#include "sculpt/train/evaluate.h"
#include "sculpt/train/optim.h"
#include "sculpt/train/precision.h"

namespace {

#define SCULPT_REQUIRE_GPU() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device found"

sculpt::models::TransformerConfig tiny_bert() {
  nlohmann::json j = {{"model_type", "bert"},          {"vocab_size", 97},       {"hidden_size", 64},
                      {"num_hidden_layers", 2},         {"num_attention_heads", 4}, {"intermediate_size", 128},
                      {"max_position_embeddings", 64}, {"num_labels", 3}};
  auto c = sculpt::models::bert_config_from_json(j);
  c.num_labels = 3;
  return c;
}

sculpt::models::Batch batch_on(const torch::Device& d) {
  torch::manual_seed(1);
  sculpt::models::Batch b;
  b.input_ids = torch::randint(5, 97, {4, 24}, torch::kLong);
  b.attention_mask = torch::ones({4, 24}, torch::kLong);
  b.attention_mask[3].slice(0, 10).zero_();
  b.token_type_ids = torch::zeros({4, 24}, torch::kLong);
  b.labels = torch::tensor({0, 1, 2, 1}, torch::kLong);
  return b.to(d);
}

TEST(Cuda, ResolveDeviceBindsThisRanksGpu) {
  SCULPT_REQUIRE_GPU();
  auto d = sculpt::train::resolve_device("cuda");
  EXPECT_TRUE(d.is_cuda());
  EXPECT_EQ(d.index(), 0);  // one process: local rank 0
  EXPECT_EQ(sculpt::train::resolve_device("auto"), d);
}

TEST(Cuda, BertLogitsLossAndGradientsMatchTheCpu) {
  SCULPT_REQUIRE_GPU();
  at::globalContext().setAllowTF32CuBLAS(false);
  torch::manual_seed(0);
  sculpt::models::Bert cpu(tiny_bert());
  cpu->init_weights();
  cpu->eval();
  sculpt::models::Bert gpu(tiny_bert());
  gpu->to(torch::kCUDA);
  {
    torch::NoGradGuard g;
    auto src = cpu->parameters(), dst = gpu->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  gpu->eval();
  auto a = cpu->forward(batch_on(torch::kCPU)), b = gpu->forward(batch_on(torch::kCUDA));
  EXPECT_TRUE(torch::allclose(a.logits, b.logits.cpu(), 1e-4, 1e-4));
  a.loss.backward();
  b.loss.backward();
  auto ga = cpu->parameters()[0].grad(), gb = gpu->parameters()[0].grad().cpu();
  EXPECT_TRUE(torch::allclose(ga, gb, 1e-4, 1e-5));
}

TEST(Cuda, Bf16AutocastTracksFp32) {
  SCULPT_REQUIRE_GPU();
  torch::manual_seed(0);
  sculpt::models::Bert model(tiny_bert());
  model->init_weights();
  model->to(torch::kCUDA);
  model->eval();
  auto batch = batch_on(torch::kCUDA);
  auto fp32 = model->forward(batch).logits;
  torch::Tensor bf16;
  {
    sculpt::train::AutocastGuard autocast("bf16", torch::Device(torch::kCUDA));
    bf16 = model->forward(batch).logits;
  }
  EXPECT_TRUE(torch::allclose(bf16.to(torch::kFloat), fp32, 5e-2, 5e-2));
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCUDA));  // the guard restored it
}

TEST(Cuda, FusedAttentionEqualsStepByStep) {
  SCULPT_REQUIRE_GPU();
  torch::manual_seed(0);
  auto o = torch::TensorOptions().device(torch::kCUDA);
  auto q = torch::randn({2, 4, 16, 32}, o), k = torch::randn({2, 4, 16, 32}, o), v = torch::randn({2, 4, 16, 32}, o);
  auto mask = torch::ones({2, 16}, o);
  mask[1].slice(0, 9).zero_();
  auto bias = sculpt::models::extended_attention_mask(mask, torch::kFloat);
  torch::Tensor probs;
  auto slow = sculpt::models::attend(q, k, v, bias, std::sqrt(32.0), 0.0, &probs);
  auto fast = sculpt::models::attend(q, k, v, bias, std::sqrt(32.0), 0.0);
  EXPECT_TRUE(torch::allclose(slow, fast, 1e-4, 1e-4));
}

TEST(Cuda, Int8ProductsMatchTheFakeQuantizedOnesAndTheCpuKernel) {
  SCULPT_REQUIRE_GPU();
  torch::manual_seed(4);
  // 64 x 48, and the odd widths of a packed model (cuBLASLt's int8 kernels refuse them unpadded).
  for (auto [in, out] : {std::pair<int64_t, int64_t>{64, 48}, {61, 45}}) {
    auto w = torch::randn({out, in}) * 0.2, b = torch::randn({out});
    sculpt::compress::FakeQuantLinear k(torch::kCPU, 0.0);
    k.forward(torch::randn({40, in}) * 1.5, w, b);  // calibrate
    k.observe = false;
    const auto m = k.export_int8(w);
    for (int64_t rows : {5, 17, 60}) {  // _int_mm needs more than 16 rows: fewer are padded
      auto x = torch::randn({rows, in});
      const auto fake = k.forward(x, w, b);
      sculpt::models::Int8LinearKernel gpu(m, b, torch::Device("cuda"));
      const auto real = gpu.forward(x.cuda(), w.cuda(), b.cuda()).cpu();
      const double step = m.input_scale * w.abs().max().item<double>();
      EXPECT_LE((real - fake).abs().max().item<double>(), 2 * step) << rows << "x" << in << "x" << out;
      sculpt::models::Int8LinearKernel cpu(m, b, torch::kCPU);
      EXPECT_LE((real - cpu.forward(x, w, b)).abs().max().item<double>(), 2 * step) << rows << "x" << in << "x" << out;
    }
  }
}

}  // namespace
