// 8-bit quantization (compress/quantize.h, io/int8_weights.h, models/int8_linear.h): weights and
// inputs against hand computations, the straight-through gradient, the moving range, files that
// reload bit-exact, and the int8 products against the fake-quantized ones.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "sculpt/compress/quantize.h"
#include "sculpt/core/error.h"
#include "sculpt/io/int8_weights.h"
#include "sculpt/models/any_bert.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/int8_linear.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/train/select_weights.h"
#include "test_util.h"

namespace sculpt {
namespace {

TEST(Quantize, WeightsPerChannelByHand) {
  auto w = torch::tensor({{1.0f, -0.5f, 0.25f}, {2.0f, 0.1f, -2.0f}});
  // Row 0: s = 1/127, w/s = 127, -63.5 (ties to even: -64), 31.75 -> 32. Row 1: s = 2/127: 127, 6.35 -> 6, -127.
  auto m = compress::quantize_weight(w);
  EXPECT_TRUE(torch::equal(m.q, torch::tensor({{127, -64, 32}, {127, 6, -127}}, torch::kInt8)));
  EXPECT_TRUE(torch::equal(m.scale, torch::tensor({1.0f / 127, 2.0f / 127})));
  EXPECT_EQ(m.input_scale, 0);  // dynamic until a range is set
  EXPECT_TRUE(torch::equal(compress::fake_quant_weight(w), m.q.to(torch::kFloat) * m.scale.unsqueeze(1)));
}

TEST(Quantize, StraightThroughGradients) {
  auto w = torch::tensor({{1.0f, -0.5f, 0.25f}, {2.0f, 0.1f, -2.0f}}, torch::requires_grad());
  compress::fake_quant_weight(w).mul(torch::tensor({{1.0f, 2.0f, 3.0f}, {4.0f, 5.0f, 6.0f}})).sum().backward();
  EXPECT_TRUE(torch::equal(w.grad(), torch::tensor({{1.0f, 2.0f, 3.0f}, {4.0f, 5.0f, 6.0f}}))) << "weights are never clamped";
  // Inputs: range [-1, 1] -> s = 2/127, z = 64; 3.0 is past the top and gets no gradient.
  compress::FakeQuantLinear k(torch::kCPU);
  k.min.fill_(-1.0), k.max.fill_(1.0), k.seen.fill_(1.0);
  k.observe = false;
  const auto [s, z] = k.input_qparams();
  EXPECT_FLOAT_EQ(s.item<float>(), 2.0f / 127);
  EXPECT_EQ(z.item<int>(), 64);
  auto x = torch::tensor({{0.5f, 3.0f}}, torch::requires_grad());
  auto weight = torch::tensor({{1.0f, 1.0f}, {2.0f, 2.0f}});
  k.forward(x, weight, {}).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({{3.0f, 0.0f}})));
}

TEST(Quantize, InputRangeIsAMovingAverageAfterTheFirstBatch) {
  compress::FakeQuantLinear k(torch::kCPU, 0.01);
  auto w = torch::eye(2);
  k.forward(torch::tensor({{-2.0f, 4.0f}}), w, {});
  EXPECT_FLOAT_EQ(k.min.item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(k.max.item<float>(), 4.0f);
  k.forward(torch::tensor({{-1.0f, 6.0f}}), w, {});
  EXPECT_FLOAT_EQ(k.min.item<float>(), -2.0f + 0.01f * 1.0f);
  EXPECT_FLOAT_EQ(k.max.item<float>(), 4.0f + 0.01f * 2.0f);
  compress::FakeQuantLinear running(torch::kCPU, 0.0);  // calibration: running extremes
  running.forward(torch::tensor({{-2.0f, 4.0f}}), w, {});
  running.forward(torch::tensor({{-1.0f, 6.0f}}), w, {});
  EXPECT_FLOAT_EQ(running.min.item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(running.max.item<float>(), 6.0f);
}

TEST(Quantize, Int8FilesReloadBitExactAndRefuseBadParts) {
  testing::TempDir tmp;
  torch::manual_seed(1);
  auto w = torch::randn({6, 10});
  auto m = compress::quantize_weight(w);
  m.input_scale = 0.037, m.input_zero_point = 51;
  const std::string path = tmp.str("m.int8.safetensors");
  io::write_int8_weights(path, {{"bias", torch::arange(3.0f)}}, {{"layer.0.weight", m}});
  auto back = io::read_int8_weights(path);
  ASSERT_EQ(back.quantized.count("layer.0.weight"), 1u);
  const auto& r = back.quantized.at("layer.0.weight");
  EXPECT_TRUE(torch::equal(r.q, m.q));
  EXPECT_TRUE(torch::equal(r.scale, m.scale));
  EXPECT_FLOAT_EQ(static_cast<float>(r.input_scale), 0.037f);
  EXPECT_EQ(r.input_zero_point, 51);
  EXPECT_TRUE(torch::equal(io::dequantized(back).at("layer.0.weight"), compress::fake_quant_weight(w)));
  EXPECT_TRUE(torch::equal(back.plain.at("bias"), torch::arange(3.0f)));
  auto bad = m;
  bad.q = m.q.clone();
  bad.q[0][0] = -128;
  io::write_int8_weights(path, {}, {{"w", bad}});
  EXPECT_THROW(io::read_int8_weights(path), Error);
  io::write_safetensors(path, {{"w::int8", m.q}, {"w::scale", m.scale}}, {{"sculpt_int8", "x"}});
  EXPECT_THROW(io::read_int8_weights(path), Error);  // no input scale / zero point
}

TEST(Quantize, Int8ProductsMatchTheFakeQuantizedOnes) {
  torch::manual_seed(2);
  const int64_t in = 64, out = 48;
  auto w = torch::randn({out, in}) * 0.2, b = torch::randn({out});
  compress::FakeQuantLinear k(torch::kCPU, 0.0);
  k.forward(torch::randn({40, in}) * 1.5, w, b);  // calibrate
  k.observe = false;
  auto x = torch::randn({3, 20, in});
  auto fake = k.forward(x, w, b);
  auto m = k.export_int8(w);
  models::Int8LinearKernel int8(m, b, torch::kCPU);
  auto real = int8.forward(x, w, b);
  ASSERT_EQ(real.sizes(), fake.sizes());
  // The products are integers in both; they differ only where an input rounds the other way at a
  // tie (x / s vs x * (1 / s)): at most one input step, s_x |w|, per flipped element.
  const double step = m.input_scale * w.abs().max().item<double>();
  const double diff = (real - fake).abs().max().item<double>();
  std::printf("[quantize] one linear map: max |int8 - fake| %.3g, one input step %.3g, mean %.3g\n", diff, step,
              (real - fake).abs().mean().item<double>());
  EXPECT_LE(diff, 2 * step) << "max |int8 - fake| " << diff << ", one input step " << step;
  EXPECT_LT((real - fake).abs().mean().item<double>(), 1e-3 * step + 1e-6);
  // Dynamic: each input by its own range.
  auto dyn = m;
  dyn.input_scale = 0;
  models::Int8LinearKernel d(dyn, b, torch::kCPU);
  auto y = d.forward(x, w, b), ref = at::linear(x, w, b);
  EXPECT_LT((y - ref).abs().max().item<double>(), 0.1 * ref.abs().max().item<double>());
}

// The CUDA path's padding (cuBLASLt refuses odd int8 shapes), checked through the CPU's _int_mm:
// zero rows and columns must leave every product exact.
TEST(Quantize, PaddedInt8ProductIsTheExactIntegerProduct) {
  torch::manual_seed(9);
  for (auto [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{5, 61, 45}, {40, 64, 48}, {33, 17, 3}}) {
    auto x = torch::randint(-127, 128, {m, k}, torch::kInt8), q = torch::randint(-127, 128, {k, n}, torch::kInt8);
    const auto qp = models::pad_int8_weight(q);
    EXPECT_EQ(qp.size(0) % 16, 0);
    EXPECT_EQ(qp.size(1) % 16, 0);
    const auto y = models::int_mm_padded(x, qp, n);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{m, n}));
    EXPECT_EQ(y.scalar_type(), torch::kInt);
    EXPECT_TRUE(torch::equal(y.to(torch::kLong), torch::matmul(x.to(torch::kLong), q.to(torch::kLong)))) << m << "x" << k << "x" << n;
  }
}

TEST(Quantize, Int8BertDirectoryTracksTheFakeQuantizedBert) {
  testing::TempDir tmp;
  models::TransformerConfig c;
  c.vocab_size = 60, c.hidden_size = 32, c.num_layers = 2, c.num_heads = 4, c.intermediate_size = 64, c.max_positions = 32;
  c.num_labels = 3, c.hidden_dropout = c.attention_dropout = 0;
  torch::manual_seed(5);
  models::Bert bert(c);
  bert->init_weights();
  bert->eval();
  const auto keys = models::bert_key_map(c);
  const recipe::QuantizeSection defaults;
  std::vector<std::pair<std::string, std::string>> names;
  for (const auto& w : train::select_weights(*bert, keys, defaults.include, defaults.exclude, "quantize")) names.emplace_back(w.hf, w.internal);
  ASSERT_EQ(names.size(), 12u);
  auto layers = compress::attach_fake_quant(*bert, names, 0.0);
  auto batch = [](int64_t seed) {
    torch::manual_seed(seed);
    models::Batch b;
    b.input_ids = torch::randint(5, 60, {4, 12});
    b.attention_mask = torch::ones({4, 12}, torch::kLong);
    b.attention_mask[3].narrow(0, 8, 4).zero_();
    b.token_type_ids = torch::zeros({4, 12}, torch::kLong);
    return b;
  };
  torch::NoGradGuard no_grad;
  bert->forward(batch(10));  // calibrate
  bert->forward(batch(11));
  for (auto& [hf, k] : layers) k->observe = false;
  const auto fake = bert->forward(batch(12)).logits;
  models::save_bert(bert, tmp.str());
  compress::write_int8_directory(tmp.str(), compress::int8_matrices(*bert, layers, keys), "test");
  auto loaded = models::load_any_bert(tmp.str());
  EXPECT_EQ(loaded.int8_layers, 12);
  // The loaded float weights are the fake-quantized ones, bit for bit.
  auto params = loaded.module->named_parameters();
  for (const auto& [hf, internal] : names)
    EXPECT_TRUE(torch::equal(*params.find(internal), compress::fake_quant_weight(*bert->named_parameters().find(internal)))) << hf;
  const auto real = loaded.forward(batch(12), {}).logits;
  // Measured: 2.8e-9 of logits 0.02 (the same integer products; only float rounding differs). Stated: 1e-3 relative.
  const double scale = fake.abs().max().item<double>(), diff = (real - fake).abs().max().item<double>();
  std::printf("[quantize] tiny BERT logits: max |int8 - fake| %.3g of max |logit| %.3g\n", diff, scale);
  EXPECT_LE(diff, 1e-3 * scale) << "int8 logits " << real << " vs fake-quantized " << fake;
  EXPECT_TRUE(torch::equal(real.argmax(-1), fake.argmax(-1)));
}

}  // namespace
}  // namespace sculpt
