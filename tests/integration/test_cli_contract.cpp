// `sculpt forward` and `sculpt tokenize` hold to their contract on the HF fixtures;
// `sculpt validate` and `run` refuse bad recipes with the key and line.
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/io/safetensors.h"

namespace sculpt {
namespace {

TEST(CliForward, ReferenceInputsGiveReferenceOutputs) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/bert_seqcls");
  testing::TempDir tmp;
  std::string out;
  ASSERT_EQ(testing::run_cli({"forward", "--model", dir, "--inputs", dir + "/reference.safetensors", "--out",
                              tmp.str("out.safetensors")},
                             tmp.str("log"), &out),
            0)
      << out;
  auto got = io::read_safetensors(tmp.str("out.safetensors"));
  auto ref = io::read_safetensors(dir + "/reference.safetensors").tensors;
  for (const char* name : {"loss", "logits", "hidden_states.2", "attentions.1", "pooler_output", "grad_norms"}) {
    ASSERT_TRUE(got.tensors.count(name)) << name;
    EXPECT_TRUE(testing::all_close(got.tensors[name], ref.at(name), 1e-5, 1e-4)) << name;
  }
  EXPECT_EQ(got.tensors["loss"].dim(), 0);
  auto names = nlohmann::json::parse(got.metadata.at("grad_norm_names"));
  EXPECT_EQ(names.size(), static_cast<size_t>(got.tensors["grad_norms"].numel()));
}

TEST(CliForward, QaFromBinWeights) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/bert_qa");
  testing::TempDir tmp;
  ASSERT_EQ(testing::run_cli({"forward", "--model", dir, "--inputs", dir + "/reference.safetensors", "--out",
                              tmp.str("out.safetensors"), "--weights", "bin"},
                             tmp.str("log")),
            0);
  auto got = io::read_safetensors(tmp.str("out.safetensors")).tensors;
  auto ref = io::read_safetensors(dir + "/reference.safetensors").tensors;
  EXPECT_TRUE(testing::all_close(got.at("start_logits"), ref.at("start_logits"), 1e-5, 1e-5));
  EXPECT_TRUE(testing::all_close(got.at("loss"), ref.at("loss"), 1e-5, 1e-5));
}

TEST(CliForward, CorruptWeightsAreRefusedNotCrashed) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/bert_seqcls");
  testing::TempDir tmp;
  std::filesystem::copy_file(dir + "/config.json", tmp.str("config.json"));
  {
    std::ifstream in(dir + "/model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream out(tmp.str("model.safetensors"), std::ios::binary);
    out << bytes.substr(0, bytes.size() / 2);  // truncated download
  }
  std::string out;
  EXPECT_EQ(testing::run_cli({"forward", "--model", tmp.str(), "--inputs", dir + "/reference.safetensors", "--out",
                              tmp.str("o.safetensors")},
                             tmp.str("log"), &out),
            1);
  EXPECT_NE(out.find("model.safetensors"), std::string::npos) << out;
  EXPECT_NE(out.find("truncated"), std::string::npos) << out;
}

TEST(CliForward, T5AndOptWithGeneration) {
  for (const char* fixture : {"t5_v1_1", "opt_350m_style"}) {
    SCULPT_REQUIRE_SHARED(dir, std::string("fixtures/hf/") + fixture);
    testing::TempDir tmp;
    std::string out;
    ASSERT_EQ(testing::run_cli({"forward", "--model", dir, "--inputs", dir + "/reference.safetensors", "--out",
                                tmp.str("out.safetensors")},
                               tmp.str("log"), &out),
              0)
        << out;
    auto got = io::read_safetensors(tmp.str("out.safetensors")).tensors;
    auto ref = io::read_safetensors(dir + "/reference.safetensors").tensors;
    EXPECT_TRUE(torch::equal(got.at("generated_ids"), ref.at("generated_ids"))) << fixture;
    EXPECT_TRUE(testing::all_close(got.at("generate_scores"), ref.at("generate_scores"), 1e-4, 1e-4)) << fixture;
    EXPECT_TRUE(testing::all_close(got.at("loss"), ref.at("loss"), 1e-5, 1e-5)) << fixture;
    EXPECT_TRUE(testing::all_close(got.at("grad_norms"), ref.at("grad_norms"), 1e-5, 1e-4)) << fixture;
  }
}

class CliTokenize : public ::testing::TestWithParam<std::string> {};

TEST_P(CliTokenize, FixtureLinesRoundTrip) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/" + GetParam());
  testing::TempDir tmp;
  ASSERT_EQ(testing::run_cli({"tokenize", "--tokenizer", dir, "--input", dir + "/encodings.jsonl", "--out", tmp.str("out.jsonl")},
                             tmp.str("log")),
            0);
  auto expected = testing::read_lines(dir + "/encodings.jsonl");
  auto got = testing::read_lines(tmp.str("out.jsonl"));
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    auto e = nlohmann::json::parse(expected[i]), g = nlohmann::json::parse(got[i]);
    for (const char* f : {"text", "text_pair", "add_special_tokens", "truncation", "max_length", "input_ids", "token_type_ids",
                          "attention_mask", "tokens"})
      EXPECT_EQ(g[f], e[f]) << "line " << i + 1 << " field " << f;
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, CliTokenize, ::testing::Values("tok_bert_wordpiece", "tok_t5_sentencepiece", "tok_opt_bpe"));

TEST(CliRecipe, UnknownKeyIsAnErrorWithLineAndSuggestion) {
  testing::TempDir tmp;
  {
    std::ofstream f(tmp.str("r.yaml"));
    f << "run:\n  name: x\nmodel:\n  tokenizer: /nonexistent\n  config: {hidden_size: 8}\ntrain:\n  lr: 1.0e-3\n  warmpu: 0.1\n";
  }
  std::string out;
  EXPECT_EQ(testing::run_cli({"validate", tmp.str("r.yaml")}, tmp.str("log"), &out), 1);
  EXPECT_NE(out.find("r.yaml:8: unknown key 'train.warmpu' (did you mean 'warmup'?)"), std::string::npos) << out;
  EXPECT_EQ(testing::run_cli({"run", tmp.str("r.yaml"), "--bogus"}, tmp.str("log"), &out), 1);
  EXPECT_NE(out.find("unknown option --bogus"), std::string::npos) << out;
}

TEST(CliRecipe, ValidateShipsTheQuickstart) {
  SCULPT_REQUIRE_SHARED(dir, "data/glue/SST-2");
  testing::TempDir tmp;
  std::string out;
  EXPECT_EQ(testing::run_cli({"validate", std::string(SCULPT_SOURCE_DIR) + "/recipes/quickstart.yaml"}, tmp.str("log"), &out), 0)
      << out;
  EXPECT_NE(out.find("# ok"), std::string::npos) << out;
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

TEST(CliEval, SquadDevWithTheQaFixtureModel) {
  SCULPT_REQUIRE_SHARED(model, "fixtures/hf/bert_qa");
  SCULPT_REQUIRE_SHARED(data, "data/squad/dev-v1.1.json");
  testing::TempDir tmp;
  std::string out;
  ASSERT_EQ(testing::run_cli({"eval", "--model", model, "--task", "squad", "--data", data, "--max-examples", "200", "--device",
                              "cpu", "--predictions", tmp.str("pred.json")},
                             tmp.str("log"), &out),
            0)
      << out;
  auto j = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(j["examples"], 200);
  EXPECT_EQ(j["total"], 200.0);
  EXPECT_GE(j["f1"].get<double>(), j["exact"].get<double>());
  auto preds = nlohmann::json::parse(std::ifstream(tmp.str("pred.json")));
  EXPECT_EQ(preds.size(), 200u);
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

TEST(CliBench, InferComparesModelsInOneRun) {
  SCULPT_REQUIRE_SHARED(model, "fixtures/hf/bert_seqcls");
  testing::TempDir tmp;
  std::string out;
  ASSERT_EQ(testing::run_cli({"bench", "infer", "--model", model, "--model", model, "--shape", "4x16", "--steps", "1",
                              "--device", "cpu"},
                             tmp.str("log"), &out),
            0)
      << out;
  EXPECT_NE(out.find("4x16"), std::string::npos) << out;
  EXPECT_NE(out.find("speedup 1.00x"), std::string::npos) << out;
  EXPECT_NE(out.find("139651 params"), std::string::npos) << out;
}

TEST(CliBench, TrainPrintsThroughputAndBaselineRatio) {
  testing::TempDir tmp;
  std::string out;
  ASSERT_EQ(testing::run_cli({"bench", "train", "--model", "quickstart", "--batch", "2", "--seq", "8", "--steps", "1",
                              "--warmup", "0", "--device", "cpu"},
                             tmp.str("log"), &out),
            0)
      << out;
  for (const char* field : {"samples/s", "tokens/s", "model TFLOP/s", "ratio step/GEMM"})
    EXPECT_NE(out.find(field), std::string::npos) << field << "\n" << out;
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

// sculpt's ids against Hugging Face's `tokenizers` (in the project's venv, which scripts/setup.sh
// --test installs with Transformers) on the same rows in the same run: every one identical,
// including RTE's long pairs that longest_first cuts on both sides.
TEST(CliBench, DataComparesIdsWithHfTokenizersInOneRun) {
  SCULPT_REQUIRE_SHARED(glue, "data/glue/RTE");
  SCULPT_REQUIRE_SHARED(tok, "models/bert-base-uncased-tokenizer");
  testing::TempDir tmp;
  std::string out;
  ASSERT_EQ(testing::run_cli({"bench", "data", "--task", "rte", "--split", "train", "--threads", "2", "--tokenizer", tok},
                             tmp.str("log"), &out),
            0)
      << out;
  EXPECT_NE(out.find("ids identical: 2490 / 2490 examples\n"), std::string::npos) << out;
  EXPECT_NE(out.find("speed ratio sculpt / HF tokenizers: "), std::string::npos) << out;
  EXPECT_NE(out.find("reloaded in"), std::string::npos) << out;
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

// Long verbs re-execute themselves once with a short OpenMP spin (core/env.h); a user's own
// GOMP_SPINCOUNT or OMP_WAIT_POLICY is left alone.
TEST(CliEnv, LongVerbsRunWithAShortOpenmpSpinUnlessTheUserChoseOne) {
  ::unsetenv("GOMP_SPINCOUNT");
  ::unsetenv("OMP_WAIT_POLICY");
  testing::TempDir tmp;
  std::string out;
  ASSERT_EQ(testing::run_cli({"env"}, tmp.str("a.log"), &out), 0) << out;
  EXPECT_NE(out.find("openmp wait   GOMP_SPINCOUNT=30000 OMP_WAIT_POLICY=(unset)"), std::string::npos) << out;
  ASSERT_EQ(testing::run_cli({"env"}, tmp.str("b.log"), &out, {"OMP_WAIT_POLICY=passive"}), 0) << out;
  EXPECT_NE(out.find("openmp wait   GOMP_SPINCOUNT=(unset) OMP_WAIT_POLICY=passive"), std::string::npos) << out;
  ASSERT_EQ(testing::run_cli({"env"}, tmp.str("c.log"), &out, {"GOMP_SPINCOUNT=7"}), 0) << out;
  EXPECT_NE(out.find("openmp wait   GOMP_SPINCOUNT=7 OMP_WAIT_POLICY=(unset)"), std::string::npos) << out;
}

}  // namespace
}  // namespace sculpt
