// Pruning on SQuAD v1.1 end to end, with the tiny BERT QA fixture as the teacher and a slice of
// the real dev set: SP3 picks the best packed span model by F1 within the target, and that
// model scores in `sculpt eval --task squad` exactly what the masked student scored; CoFi meets
// its pruned fraction and the packed span model goes through the fine-tune stage.
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace sculpt {
namespace {

const std::string kRecipes = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/";

class PruneSquad : public testing::CliTest {
 protected:
  void SetUp() override {
    testing::CliTest::SetUp();
    if (IsSkipped()) return;
    if (testing::shared_path("data/squad/dev-v1.1.json").empty() || testing::shared_path("fixtures/hf/bert_qa").empty())
      GTEST_SKIP() << "needs ../shared/data/squad/dev-v1.1.json and fixtures/hf/bert_qa (set SCULPT_SHARED); not found, skipped";
  }
  nlohmann::json json(const std::string& rel) { return nlohmann::json::parse(std::ifstream(tmp.str(rel))); }
  std::vector<nlohmann::json> jsonl(const std::string& rel) {
    std::vector<nlohmann::json> out;
    for (const auto& line : testing::read_lines(tmp.str(rel))) out.push_back(nlohmann::json::parse(line));
    return out;
  }
};

TEST_F(PruneSquad, Sp3PacksTheBestSpanModelByF1AndEvalScoresItTheSame) {
  ASSERT_EQ(run({"run", kRecipes + "tiny_bert_squad_sp3.yaml", "run.output_root=" + tmp.str()}, "sp3.log"), 0) << last_output;
  auto metrics = jsonl("tiny_bert_squad_sp3/metrics.jsonl");
  ASSERT_FALSE(metrics.empty());
  EXPECT_GT(metrics.back()["pred_loss"].get<double>(), 0.0);  // KL(start) + KL(end) of a student that moved

  auto summary = json("tiny_bert_squad_sp3/compression.json");
  EXPECT_EQ(summary["metric"], "f1");
  EXPECT_NE(summary["packed_model"].get<std::string>().find("/best"), std::string::npos);
  const double remaining = summary["sparsity"]["packed_remaining"].get<double>();
  EXPECT_LE(remaining, 0.5 + 0.05);
  // The packed model scores exactly what the masked student scored at the chosen evaluation.
  const int64_t best_step = json("tiny_bert_squad_sp3/results.json")["best"]["step"];
  double student_f1 = -1;
  for (const auto& e : jsonl("tiny_bert_squad_sp3/eval.jsonl"))
    if (e["step"] == best_step) {
      student_f1 = e["f1"];
      EXPECT_NEAR(e["packed_remaining"].get<double>(), remaining, 1e-12);
    }
  const double packed_f1 = summary["packed"]["f1"].get<double>();
  EXPECT_DOUBLE_EQ(packed_f1, student_f1);
  EXPECT_EQ(summary["packed"]["total"], 40);

  auto config = json("tiny_bert_squad_sp3/best/config.json");
  EXPECT_EQ(config["architectures"][0], "SculptPackedBertForQuestionAnswering");
  // `sculpt eval` loads the packed span model and, with the run's windows, scores the same.
  ASSERT_EQ(run({"eval", "--model", tmp.str("tiny_bert_squad_sp3/best"), "--task", "squad", "--data",
                 testing::shared_path("data/squad/dev-v1.1.json"), "--device", "cpu", "--max-examples", "40", "--max-length", "64",
                 "--doc-stride", "16", "--max-query-length", "24"},
                "eval.log"),
            0)
      << last_output;
  auto e = nlohmann::json::parse(last_output.substr(last_output.find('{')));
  EXPECT_EQ(e["examples"], 40);
  EXPECT_DOUBLE_EQ(e["f1"].get<double>(), packed_f1) << e;
}

TEST_F(PruneSquad, CofiMeetsItsTargetAndThePackedSpanModelFineTunes) {
  ASSERT_EQ(run({"run", kRecipes + "tiny_bert_squad_cofi.yaml", "run.output_root=" + tmp.str()}, "cofi.log"), 0) << last_output;
  auto summary = json("tiny_bert_squad_cofi/compression.json");
  const double sparsity = summary["sparsity"]["packed_sparsity"].get<double>();
  EXPECT_GE(sparsity, 0.4 - 0.05);  // the best evaluation is within target - epsilon
  EXPECT_NE(summary["packed_model"].get<std::string>().find("/best"), std::string::npos);
  // The fine-tune stage trained the packed span model (10 updates) and exported one.
  auto finetune = json("tiny_bert_squad_cofi/finetune/results.json");
  EXPECT_EQ(finetune["updates"], 10);
  EXPECT_EQ(finetune["metric"], "f1");
  EXPECT_TRUE(summary.contains("finetuned_best"));
  EXPECT_EQ(json("tiny_bert_squad_cofi/finetune/final/config.json")["architectures"][0], "SculptPackedBertForQuestionAnswering");
}

}  // namespace
}  // namespace sculpt
