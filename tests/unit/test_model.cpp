#include "sculpt/core/error.h"
#include "sculpt/models/bert.h"
#include "sculpt/train/optim.h"
#include "sculpt/train/precision.h"
#include "test_util.h"

namespace sculpt {
namespace {

models::TransformerConfig tiny() {
  return models::bert_config_from_json({{"model_type", "bert"}, {"vocab_size", 50}, {"hidden_size", 16},
                                        {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"intermediate_size", 32},
                                        {"max_position_embeddings", 20}});
}

TEST(Model, SaveLoadRoundTripKeepsHfKeysAndOutputs) {
  torch::manual_seed(1);
  models::Bert model(tiny());
  model->init_weights();
  model->eval();
  testing::TempDir tmp;
  models::save_bert(model, tmp.str());
  auto loaded = models::load_bert(tmp.str(), /*strict=*/true).model;
  loaded->eval();
  models::Batch b;
  b.input_ids = torch::randint(0, 50, {2, 7});
  EXPECT_TRUE(torch::equal(model->forward(b).logits, loaded->forward(b).logits));
  auto keys = io::read_safetensors(tmp.str("model.safetensors")).tensors;
  EXPECT_TRUE(keys.count("bert.encoder.layer.1.attention.self.query.weight"));
  EXPECT_TRUE(keys.count("classifier.bias"));
}

TEST(Model, MissingAndUnexpectedKeysAreAllReported) {
  torch::manual_seed(1);
  models::Bert model(tiny());
  testing::TempDir tmp;
  models::save_bert(model, tmp.str());
  auto weights = io::read_safetensors(tmp.str("model.safetensors")).tensors;
  weights.erase("bert.encoder.layer.0.output.dense.weight");
  weights.erase("bert.pooler.dense.bias");
  weights["cls.predictions.bias"] = torch::zeros({50});
  io::write_safetensors(tmp.str("model.safetensors"), weights);
  try {
    models::load_bert(tmp.str(), true);
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("missing 2 keys"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bert.pooler.dense.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 unexpected keys: cls.predictions.bias"), std::string::npos) << msg;
  }
}

TEST(Model, PretrainedEncoderGetsANewHead) {
  torch::manual_seed(1);
  auto c = tiny();
  c.head = models::HeadType::none;
  models::Bert encoder(c);
  testing::TempDir tmp;
  models::save_bert(encoder, tmp.str());
  auto head = tiny();
  head.num_labels = 3;
  auto loaded = models::load_bert(tmp.str(), /*strict=*/false, io::WeightFormat::safetensors, &head);
  EXPECT_EQ(loaded.report.missing, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_EQ(loaded.model->heads.classifier->weight.size(0), 3);
}

TEST(Optim, LinearWarmupThenDecayLikeHf) {
  EXPECT_DOUBLE_EQ(train::linear_schedule(0, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(train::linear_schedule(5, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(train::linear_schedule(10, 10, 110), 1.0);
  EXPECT_DOUBLE_EQ(train::linear_schedule(60, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(train::linear_schedule(110, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(train::linear_schedule(0, 0, 10), 1.0);
}

TEST(Optim, NoDecayOnBiasesAndLayerNorm) {
  models::Bert model(tiny());
  auto opt = train::make_adamw(*model, {1e-3, 0.01});
  ASSERT_EQ(opt->param_groups().size(), 2u);
  auto& g0 = opt->param_groups()[0];
  auto& g1 = opt->param_groups()[1];
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(g0.options()).weight_decay(), 0.01);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(g1.options()).weight_decay(), 0.0);
  // Per layer: 6 weight matrices decay; 6 biases + 2 LayerNorms x 2 do not.
  size_t total = model->parameters().size();
  EXPECT_EQ(g0.params().size() + g1.params().size(), total);
  EXPECT_EQ(g0.params().size(), 3u /*embeddings*/ + 2 * 6 + 1 /*pooler*/ + 1 /*classifier*/);
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

TEST(Optim, ExtraGroupsKeepTheirRatesAndScheduleOnlyWhereAsked) {
  auto w = torch::ones({2, 2}).requires_grad_(true), b = torch::ones({2}).requires_grad_(true);
  auto mask = torch::ones({3}).requires_grad_(true), lambda = torch::zeros({}).requires_grad_(true);
  auto setup = train::make_optimizer({{"fc.weight", w}, {"fc.bias", b}}, {2e-5, 0.01},
                                     {{{mask}, 0.1, /*scheduled=*/true}, {{lambda}, 0.05, /*scheduled=*/false}});
  auto& groups = setup.optimizer->param_groups();
  ASSERT_EQ(groups.size(), 4u);
  train::apply_schedule(setup, 0.5);
  auto lr = [&](size_t i) { return static_cast<torch::optim::AdamWOptions&>(groups[i].options()).lr(); };
  auto wd = [&](size_t i) { return static_cast<torch::optim::AdamWOptions&>(groups[i].options()).weight_decay(); };
  EXPECT_DOUBLE_EQ(lr(0), 1e-5);   // decayed model weights
  EXPECT_DOUBLE_EQ(lr(1), 1e-5);   // bias, no weight decay
  EXPECT_DOUBLE_EQ(lr(2), 0.05);   // masks follow the schedule (SP3)
  EXPECT_DOUBLE_EQ(lr(3), 0.05);   // lambda does not (CoFi-style): its base rate
  EXPECT_DOUBLE_EQ(wd(0), 0.01);
  EXPECT_DOUBLE_EQ(wd(2), 0.0);
  EXPECT_DOUBLE_EQ(wd(3), 0.0);
}

TEST(Precision, Bf16AutocastOnlyInsideTheGuard) {
  auto x = torch::randn({4, 8}), w = torch::randn({3, 8});
  {
    train::AutocastGuard g("bf16", torch::Device(torch::kCPU));
    EXPECT_EQ(torch::linear(x, w).scalar_type(), torch::kBFloat16);  // matmuls in bf16
    {
      train::AutocastGuard inner("bf16", torch::Device(torch::kCPU));  // nests
      EXPECT_EQ(torch::linear(x, w).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(torch::linear(x, w).scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(torch::linear(x, w).scalar_type(), torch::kFloat);  // restored
  {
    train::AutocastGuard g("fp32", torch::Device(torch::kCPU));
    EXPECT_EQ(torch::linear(x, w).scalar_type(), torch::kFloat);
  }
  EXPECT_THROW(train::AutocastGuard("fp8", torch::Device(torch::kCPU)), Error);
}

TEST(Optim, ClipGradNormMatchesLibTorchWithoutSync) {
  auto a = torch::tensor({3.0f, 0.0f}).requires_grad_(true), b = torch::tensor({4.0f}).requires_grad_(true);
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  auto norm = train::clip_grad_norm({a, b}, 1.0);
  EXPECT_NEAR(norm.item<double>(), 5.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 4.0 / (5.0 + 1e-6), 1e-6);
  // Below the limit nothing changes; max_norm <= 0 only measures.
  auto c = torch::tensor({0.3f}).requires_grad_(true);
  c.mutable_grad() = torch::tensor({0.3f});
  EXPECT_NEAR(train::clip_grad_norm({c}, 1.0).item<double>(), 0.3, 1e-6);
  EXPECT_FLOAT_EQ(c.grad()[0].item<float>(), 0.3f);
  c.mutable_grad() = torch::tensor({30.0f});
  train::clip_grad_norm({c}, 0);
  EXPECT_FLOAT_EQ(c.grad()[0].item<float>(), 30.0f);
}

}  // namespace
}  // namespace sculpt
