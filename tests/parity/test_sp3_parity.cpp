// SP3 on a real Hugging Face checkpoint (the bert_seqcls fixture) held to Transformers' own
// logits: the exact-init student, its packed model (all kept), the packed directory run by
// `sculpt forward`'s path, and the CoFi-mode student all reproduce the reference logits.
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

}  // namespace
}  // namespace sculpt
