// SP3 on a real Hugging Face checkpoint (the bert_seqcls fixture) held to Transformers' own
// logits: the exact-init student, its packed model (all kept), the packed directory run by
// `sculpt forward`'s path, and the CoFi-mode student all reproduce the reference logits.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "sculpt/compress/pack.h"
#include "sculpt/compress/pca.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/reference_forward.h"
#include "test_util.h"

namespace sculpt {
namespace {

TEST(Sp3Parity, StudentAndPackedModelReproduceTransformersLogits) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/bert_seqcls");
  auto reference = io::read_safetensors(dir + "/reference.safetensors").tensors;
  auto teacher = models::load_bert(dir, /*strict=*/true).model;
  teacher->eval();
  models::Batch batch{reference.at("input_ids"), reference.at("attention_mask"),
                      reference.count("token_type_ids") ? reference.at("token_type_ids") : torch::Tensor()};
  const auto& hf_logits = reference.at("logits");

  // PCA from the real rows, each alone and unpadded, as SP3 collects them.
  std::vector<models::Batch> examples;
  for (int64_t i = 0; i < batch.input_ids.size(0); ++i) {
    const int64_t n = batch.attention_mask[i].sum().item<int64_t>();
    models::Batch one;
    one.input_ids = batch.input_ids[i].narrow(0, 0, n).unsqueeze(0);
    if (batch.token_type_ids.defined()) one.token_type_ids = batch.token_type_ids[i].narrow(0, 0, n).unsqueeze(0);
    examples.push_back(one);
  }
  compress::Sp3Bert student(teacher, true);
  compress::PcaOptions o;
  o.mode = "exact";
  compress::init_sp3_from_pca(student, compress::collect_sp3_moments(student, examples, o), o);
  student->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(testing::all_close(student->forward(batch, {}).logits, hf_logits, 1e-4, 1e-4));

  auto packed = compress::pack_student(student, {});
  packed->eval();
  EXPECT_TRUE(testing::all_close(packed->forward(batch).logits, hf_logits, 1e-4, 1e-4));
  testing::TempDir out;
  models::save_packed_bert(packed, out.str());
  io::TensorMap inputs = {{"input_ids", batch.input_ids}, {"attention_mask", batch.attention_mask}};
  if (batch.token_type_ids.defined()) inputs["token_type_ids"] = batch.token_type_ids;
  auto forward = models::reference_forward(out.str(), inputs);
  EXPECT_TRUE(testing::all_close(forward.outputs.at("logits"), hf_logits, 1e-4, 1e-4));

  compress::Sp3Bert cofi(teacher, compress::StudentOptions{false, false});
  cofi->eval();
  EXPECT_TRUE(testing::all_close(cofi->forward(batch, {}).logits, hf_logits, 1e-5, 1e-5));
}

// Soft partial masks of a real shape: a kept entry gets a value in [0.5, 1), a pruned one 0.
compress::Sp3Masks real_partial_masks(const models::TransformerConfig& c, bool cofi) {
  const int64_t L = c.num_layers, D = c.hidden_size, H = c.num_heads, dh = c.head_dim(), F = c.intermediate_size;
  auto soft = [](std::vector<int64_t> shape, double keep) {
    auto u = torch::rand(shape);
    return torch::where(u < keep, 0.5 + 0.5 * torch::rand(shape), torch::zeros(shape));
  };
  compress::Sp3Masks m;
  m.hidden = cofi ? soft({1, D}, 0.6).expand({2 * L + 1, D}).contiguous() : soft({2 * L + 1, D}, 0.6);
  if (!cofi) {
    auto dims = [&] {  // one d_head pattern per layer, tiled over its heads; dim 0 always kept
      auto d = soft({L, dh}, 0.7);
      d.select(1, 0).fill_(0.9);
      return d.repeat({1, H});
    };
    m.qk = dims();
    m.vo = dims();
  }
  m.head = soft({L, H}, 0.6);
  m.head.select(1, 0).fill_(0.8);
  m.mha = torch::ones({L}) * 0.9;
  m.mha[2] = 0.0;  // one attention block and one FFN block removed
  m.ffn = soft({L, F}, 0.4);
  m.ffn_layer = torch::ones({L}) * 0.95;
  m.ffn_layer[4] = 0.0;
  return m;
}

TEST(Sp3Parity, PartialMasksOnTheRealMiniLmPackExactly) {
  // The pretrained MiniLM-L6-H384 (scripts/get_model.sh minilm-l6, which scripts/test.sh runs):
  // SP3 with the paper's PCA init from real-length inputs, and CoFi mode with its norm skip,
  // each under soft partial masks of the real shape: the packed model's logits equal the masked
  // student's.
  const std::string dir = std::string(SCULPT_SOURCE_DIR) + "/data/models/minilm-l6";
  if (!std::filesystem::exists(dir + "/model.safetensors")) GTEST_SKIP() << dir << " missing: run scripts/get_model.sh minilm-l6";
  // As a fine-tuned teacher: the same weights under a sequence-classification config (the
  // head is new, seeded), the weights file linked rather than copied (88 MB).
  testing::TempDir as_teacher;
  auto config = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
  config["architectures"] = {"BertForSequenceClassification"};
  std::ofstream(as_teacher.str("config.json")) << config.dump();
  std::filesystem::create_symlink(dir + "/model.safetensors", as_teacher.str("model.safetensors"));
  torch::manual_seed(5);
  auto teacher = models::load_bert(as_teacher.str(), /*strict=*/false).model;
  teacher->eval();
  const auto& c = teacher->config;
  ASSERT_EQ(c.num_layers, 6);
  ASSERT_EQ(c.hidden_size, 384);
  std::vector<models::Batch> examples;
  for (int i = 0; i < 24; ++i) examples.push_back({torch::randint(1000, 30000, {1, 12})});
  models::Batch batch{torch::randint(1000, 30000, {3, 16}), torch::ones({3, 16}, torch::kLong)};
  batch.attention_mask[2].narrow(0, 10, 6).zero_();

  for (const bool cofi : {false, true}) {
    compress::Sp3Bert student(teacher, cofi ? compress::StudentOptions{false, false, true} : compress::StudentOptions{true, true});
    if (!cofi) {
      compress::PcaOptions o;
      o.mode = "paper";
      o.tokens_per_example = 8;
      compress::init_sp3_from_pca(student, compress::collect_sp3_moments(student, examples, o), o);
    }
    student->eval();
    auto m = real_partial_masks(c, cofi);
    torch::NoGradGuard no_grad;
    auto expected = student->forward(batch, m).logits;
    auto packed = compress::pack_student(student, m);
    packed->eval();
    EXPECT_TRUE(testing::all_close(packed->forward(batch).logits, expected, 1e-4, 1e-4)) << (cofi ? "cofi" : "sp3");
    EXPECT_EQ(packed->config.layers[2].heads, 0);
    EXPECT_EQ(packed->config.layers[4].ffn_dim, 0);
    EXPECT_EQ(packed->config.layers[2].skip_attn_norm, cofi);
    EXPECT_EQ(packed->config.layers[4].skip_ffn_norm, cofi);
  }
}

}  // namespace
}  // namespace sculpt
