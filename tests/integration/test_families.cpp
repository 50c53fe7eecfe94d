// Whole recipes for every family/task pair on the tiny fixture models: T5 text-to-text GLUE,
// OPT classification GLUE, BERT SQuAD; and their exported directories load again.
#include <nlohmann/json.hpp>

#include <sstream>

#include "cli_runner.h"
#include "sculpt/io/safetensors.h"

namespace sculpt {
namespace {

class Families : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::shared_path("fixtures/hf/t5_small").empty() || testing::shared_path("data/glue/SST-2").empty() ||
        testing::shared_path("data/squad/dev-v1.1.json").empty())
      GTEST_SKIP() << "needs ../shared fixtures and data (set SCULPT_SHARED); not found, skipped";
  }
  // `sculpt VERB recipes/tests/RECIPE run.output_root=<tmp> EXTRA...` with the test's own token cache.
  int run(const std::string& recipe, std::vector<std::string> extra, const std::string& verb = "run") {
    std::vector<std::string> a = {verb, std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/" + recipe,
                                  "run.output_root=" + tmp.str()};
    if (verb == "tokenize") a.insert(a.begin() + 1, "--cache");
    a.insert(a.end(), extra.begin(), extra.end());
    return testing::run_cli(a, tmp.str("log"), &output, {"SCULPT_CACHE=" + tmp.str("cache")});
  }
  int lines_with(const std::string& a, const std::string& b) const {
    int n = 0;
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);) n += line.find(a) != std::string::npos && line.find(b) != std::string::npos;
    return n;
  }
  nlohmann::json last_eval(const std::string& name) {
    auto lines = testing::read_lines(tmp.str(name + "/eval.jsonl"));
    return lines.empty() ? nlohmann::json() : nlohmann::json::parse(lines.back());
  }
  testing::TempDir tmp;
  std::string output;
};

TEST_F(Families, T5LearnsToAnswerWithLabelWords) {
  ASSERT_EQ(run("tiny_t5_glue.yaml", {"data.task=sst2", "train.duration=80u", "data.max_train_examples=640", "eval.every=40u",
                                      "train.lr=3e-3"}),
            0)
      << output;
  auto e = last_eval("tiny_t5_glue");
  // Every generated answer is a label word ("positive"/"negative"): the text-to-text path works.
  EXPECT_EQ(e["unknown_outputs"], 0.0) << e;
  EXPECT_GE(e["accuracy"].get<double>(), 0.4) << e;
  // The exported model is a T5 directory `sculpt forward` runs.
  testing::TempDir io;
  io::write_safetensors(io.str("in.safetensors"), {{"input_ids", torch::tensor({{5, 6, 7, 2}})}, {"labels", torch::tensor({{8, 2}})}});
  ASSERT_EQ(testing::run_cli({"forward", "--model", tmp.str("tiny_t5_glue/final"), "--inputs", io.str("in.safetensors"), "--out",
                              io.str("out.safetensors")},
                             io.str("log"), &output),
            0)
      << output;
  EXPECT_EQ(io::read_safetensors(io.str("out.safetensors")).tensors.at("logits").size(2), 1104);
}

TEST_F(Families, OptClassifierFromACausalLmCheckpoint) {
  ASSERT_EQ(run("tiny_opt_glue.yaml", {}), 0) << output;
  EXPECT_NE(output.find("newly initialised (not in the checkpoint): score.weight"), std::string::npos) << output;
  auto e = last_eval("tiny_opt_glue");
  EXPECT_GE(e["accuracy"].get<double>(), 0.0);
  EXPECT_LE(e["accuracy"].get<double>(), 1.0);
  testing::TempDir io;
  io::write_safetensors(io.str("in.safetensors"), {{"input_ids", torch::tensor({{2, 100, 200, 1}})}, {"labels", torch::tensor({1})}});
  ASSERT_EQ(testing::run_cli({"forward", "--model", tmp.str("tiny_opt_glue/final"), "--inputs", io.str("in.safetensors"), "--out",
                              io.str("out.safetensors")},
                             io.str("log"), &output),
            0)
      << output;
  auto out = io::read_safetensors(io.str("out.safetensors")).tensors;
  EXPECT_EQ(out.at("logits").sizes(), (std::vector<int64_t>{1, 2}));
}

TEST_F(Families, BertSquadTrainsAndReportsF1) {
  // `tokenize --cache` files the features (the recipe trains on the dev file's first questions
  // too, so its second split is already filed); the run then reads them and tokenizes nothing.
  ASSERT_EQ(run("tiny_bert_squad.yaml", {}, "tokenize"), 0) << output;
  EXPECT_EQ(lines_with("[data] ", "features tokenized"), 1) << output;
  EXPECT_EQ(lines_with("[data] ", "features from the token cache"), 1);
  ASSERT_EQ(run("tiny_bert_squad.yaml", {}), 0) << output;
  EXPECT_EQ(lines_with("[data] ", "features from the token cache"), 2) << output;
  EXPECT_EQ(lines_with("[data] ", "tokenized"), 0);
  auto e = last_eval("tiny_bert_squad");
  EXPECT_EQ(e["total"], 40.0);
  EXPECT_GE(e["f1"].get<double>(), e["exact"].get<double>());
  auto results = nlohmann::json::parse(std::ifstream(tmp.str("tiny_bert_squad/results.json")));
  EXPECT_EQ(results["metric"], "f1");
}

TEST_F(Families, T5RunResumesBitwise) {
  ASSERT_EQ(run("tiny_t5_glue.yaml", {"run.name=a"}), 0) << output;
  EXPECT_EQ(run("tiny_t5_glue.yaml", {"run.name=b", "debug.crash_after_step=4"}), 128 + SIGKILL);
  EXPECT_EQ(lines_with("[data] rte train as text: ", "from the token cache"), 1) << output;  // filed by run a
  ASSERT_EQ(testing::run_cli({"resume", tmp.str("b")}, tmp.str("log2"), &output, {"SCULPT_CACHE=" + tmp.str("cache")}), 0) << output;
  EXPECT_EQ(lines_with("[data] ", "tokenized"), 0) << output;
  auto a = io::read_safetensors(tmp.str("a/final/model.safetensors")).tensors;
  auto b = io::read_safetensors(tmp.str("b/final/model.safetensors")).tensors;
  for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << k;
}

}  // namespace
}  // namespace sculpt
