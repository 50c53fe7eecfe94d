// Every tensor of the bert_*, t5_* and opt_* fixtures (Transformers 4.36.2 outputs) within the tolerance
// reference.json gives it, from both model.safetensors and pytorch_model.bin.
#include <nlohmann/json.hpp>

#include "sculpt/io/hf_dir.h"
#include "sculpt/models/reference_forward.h"
#include "test_util.h"

namespace sculpt {
namespace {

struct Case {
  std::string fixture;
  io::WeightFormat format;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.fixture << (c.format == io::WeightFormat::bin ? " (bin)" : " (safetensors)"); }

class HfParity : public ::testing::TestWithParam<Case> {};

TEST_P(HfParity, EveryReferenceTensorMatches) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/" + GetParam().fixture);
  auto reference = io::read_safetensors(dir + "/reference.safetensors").tensors;
  auto spec = io::read_json(dir + "/reference.json");
  io::TensorMap inputs;
  for (const auto& name : spec["forward"]["inputs"]) inputs[name] = reference.at(name);
  for (const char* gen : {"gen_input_ids", "gen_attention_mask"})
    if (reference.count(gen)) inputs[gen] = reference.at(gen);

  auto result = models::reference_forward(dir, inputs, GetParam().format);
  std::vector<std::string> expected_names = spec["grad_norm_names"];
  EXPECT_EQ(result.grad_norm_names, expected_names);

  int compared = 0;
  for (auto it = spec["tensors"].begin(); it != spec["tensors"].end(); ++it) {
    const std::string& name = it.key();
    if (inputs.count(name)) continue;
    ASSERT_TRUE(result.outputs.count(name)) << "sculpt produced no '" << name << "'";
    const auto& tol = it.value();
    if (tol.value("exact", false)) {
      EXPECT_TRUE(torch::equal(result.outputs[name], reference.at(name))) << name;
    } else {
      EXPECT_TRUE(testing::all_close(result.outputs[name], reference.at(name), tol["atol"], tol["rtol"])) << name;
    }
    ++compared;
  }
  EXPECT_GE(compared, 5);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParity,
                         ::testing::Values(Case{"bert_seqcls", io::WeightFormat::safetensors},
                                           Case{"bert_seqcls", io::WeightFormat::bin},
                                           Case{"bert_regression", io::WeightFormat::safetensors},
                                           Case{"bert_regression", io::WeightFormat::bin},
                                           Case{"bert_qa", io::WeightFormat::safetensors},
                                           Case{"bert_qa", io::WeightFormat::bin},
                                           Case{"t5_small", io::WeightFormat::safetensors},
                                           Case{"t5_small", io::WeightFormat::bin},
                                           Case{"t5_v1_1", io::WeightFormat::safetensors},
                                           Case{"t5_v1_1", io::WeightFormat::bin},
                                           Case{"opt_causal_lm", io::WeightFormat::safetensors},
                                           Case{"opt_causal_lm", io::WeightFormat::bin},
                                           Case{"opt_seqcls", io::WeightFormat::safetensors},
                                           Case{"opt_seqcls", io::WeightFormat::bin},
                                           Case{"opt_350m_style", io::WeightFormat::safetensors},
                                           Case{"opt_350m_style", io::WeightFormat::bin}),
                         [](const auto& info) {
                           return info.param.fixture + (info.param.format == io::WeightFormat::bin ? "_bin" : "_safetensors");
                         });

}  // namespace
}  // namespace sculpt
