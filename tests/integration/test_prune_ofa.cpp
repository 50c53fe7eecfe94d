// Prune Once for All end to end on a tiny BERT, through the CLI (recipes/tests/tiny_bert_mlm*.yaml):
// a dense masked LM, its upstream gradual magnitude pruning with distillation (killed and resumed
// bitwise), pattern-locked transfer to SST-2 distilling from a dense fine-tuned teacher, 8-bit
// quantization-aware training to an int8 directory that `sculpt eval` runs with int8 products,
// post-training quantization of the dense teacher, and QAT of a packed (zero-shot pruned) model to
// a packed int8 directory.
#include <cmath>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "sculpt/io/int8_weights.h"
#include "sculpt/io/safetensors.h"

namespace sculpt {
namespace {

const std::string kRecipes = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/";
const std::regex kEncoderMatrix(R"(layer\.[0-9]+\..*weight$)");

class PruneOfa : public testing::TinyTeacherTest {
 protected:
  void SetUp() override {
    TinyTeacherTest::SetUp();
    if (IsSkipped()) return;
    // Upstream text: real SST-2 train sentences (the label column dropped).
    std::ofstream out(tmp.str("corpus.txt"));
    int n = 0;
    for (const auto& line : testing::read_lines(testing::shared_path("data/glue/SST-2/train.tsv")))
      if (n++ > 0 && n < 1500) out << line.substr(0, line.find('\t')) << "\n";
  }
  std::vector<std::string> mlm_args(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"run", kRecipes + "tiny_bert_mlm.yaml", "run.output_root=" + tmp.str(), "run.name=" + name,
                                  "data.train_file=" + tmp.str("corpus.txt")};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::vector<std::string> prune_args(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"run", kRecipes + "tiny_bert_mlm_prune.yaml", "run.output_root=" + tmp.str(), "run.name=" + name,
                                  "data.train_file=" + tmp.str("corpus.txt"), "model.path=" + tmp.str("mlm/final"),
                                  "distill.teacher=" + tmp.str("mlm/final")};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::vector<std::string> transfer_args(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"run", kRecipes + "tiny_bert_finetune.yaml", "run.output_root=" + tmp.str(), "run.name=" + name,
                                  "model.path=" + tmp.str("pruned/final"), "sparsity.method=lock",
                                  "distill.teacher=" + tmp.str("teacher/best"), "distill.pred_weight=0.5",
                                  "distill.task_weight=0.5", "distill.layer_weight=0"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  io::TensorMap weights(const std::string& dir) { return io::read_safetensors(tmp.str(dir) + "/model.safetensors").tensors; }
  std::vector<nlohmann::json> jsonl(const std::string& path) {
    std::vector<nlohmann::json> out;
    for (const auto& l : testing::read_lines(tmp.str(path))) out.push_back(nlohmann::json::parse(l));
    return out;
  }
};

TEST_F(PruneOfa, UpstreamPruningResumesBitwiseAndTransferKeepsThePattern) {
  // 1. The dense masked LM: perplexity is exp(mean masked-token loss); lower is better.
  ASSERT_EQ(run(mlm_args("mlm"), "mlm.log"), 0) << last_output;
  auto evals = jsonl("mlm/eval.jsonl");
  ASSERT_EQ(evals.size(), 2u);
  for (const auto& e : evals) EXPECT_NEAR(e["perplexity"].get<double>(), std::exp(e["loss"].get<double>()), 1e-9 * e["perplexity"].get<double>());
  EXPECT_LT(evals[1]["perplexity"].get<double>(), evals[0]["perplexity"].get<double>()) << "16 updates at lr 1e-3 learn the unigram";
  auto results = nlohmann::json::parse(std::ifstream(tmp.str("mlm/results.json")));
  EXPECT_EQ(results["best"]["step"], 16);
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(tmp.str("mlm/final/config.json")))["architectures"][0], "BertForMaskedLM");

  // 2. Upstream pruning to 80% of every encoder matrix, uninterrupted and killed after update 9.
  ASSERT_EQ(run(prune_args("pruned"), "pruned.log"), 0) << last_output;
  EXPECT_NE(last_output.find("distilling from"), std::string::npos) << last_output;
  const auto dense = weights("mlm/final"), sparse = weights("pruned/final");
  int64_t matrices = 0, zeros = 0, total = 0;
  for (const auto& [name, w] : sparse) {
    if (w.dim() == 2 && std::regex_search(name, kEncoderMatrix)) {
      ++matrices;
      const int64_t expect_zeros = static_cast<int64_t>(0.8 * static_cast<double>(w.numel()));  // floor(s n) per matrix
      EXPECT_EQ(w.numel() - w.count_nonzero().item<int64_t>(), expect_zeros) << name;
      zeros += expect_zeros, total += w.numel();
    }
  }
  const auto& head = sparse.at("cls.predictions.transform.dense.weight");  // a matrix outside the encoder's layers
  EXPECT_EQ(head.count_nonzero().item<int64_t>(), head.numel());
  EXPECT_EQ(dense.size(), sparse.size());
  EXPECT_EQ(matrices, 12);  // 2 layers x (q, k, v, o, fc1, fc2)
  auto logs = jsonl("pruned/metrics.jsonl");
  ASSERT_FALSE(logs.empty());
  EXPECT_DOUBLE_EQ(logs.back()["target_sparsity"].get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(logs.back()["sparsity"].get<double>(), static_cast<double>(zeros) / static_cast<double>(total));
  // Halfway up the ramp (t0 = 0, t1 = 12, masks before updates 0, 3, 6, 9, 12): the 8th update (index 7) ran
  // under the masks of index 6, s(6) = 0.8 - 0.8 (1/2)^3.
  int checked = 0;
  for (const auto& l : logs)
    if (l["step"] == 8) {
      EXPECT_DOUBLE_EQ(l["target_sparsity"].get<double>(), 0.8 - 0.8 * 0.125);
      ++checked;
    }
  EXPECT_EQ(checked, 1);
  // best/ only from evaluations at the final sparsity: the first (update 10, under s(9) < 0.8) never is,
  // though it is the first evaluation.
  auto pruned_evals = jsonl("pruned/eval.jsonl");
  ASSERT_EQ(pruned_evals.size(), 2u);
  EXPECT_EQ(pruned_evals[0]["best"], false);
  EXPECT_EQ(pruned_evals[1]["best"], true);
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(tmp.str("pruned/results.json")))["best"]["step"], 20);

  EXPECT_EQ(run(prune_args("crashed", {"debug.crash_after_step=9"}), "crash.log"), 128 + SIGKILL) << last_output;
  ASSERT_TRUE(std::filesystem::exists(tmp.str("crashed/checkpoints/step_00000008/task_state.safetensors")));
  ASSERT_EQ(run({"resume", tmp.str("crashed")}, "resume.log"), 0) << last_output;
  const auto resumed = weights("crashed/final");
  for (const auto& [name, w] : sparse) EXPECT_TRUE(torch::equal(w, resumed.at(name))) << name << " differs after resume";
  auto relog = jsonl("crashed/metrics.jsonl");
  ASSERT_EQ(relog.size(), logs.size());
  for (size_t i = 0; i < logs.size(); ++i) {
    EXPECT_EQ(relog[i]["loss"], logs[i]["loss"]) << "step " << logs[i]["step"];
    EXPECT_EQ(relog[i]["sparsity"], logs[i]["sparsity"]);
  }

  // 3. Pattern-locked transfer to SST-2, distilling from the dense fine-tuned classifier; killed and resumed.
  ASSERT_EQ(run(transfer_args("transfer"), "transfer.log"), 0) << last_output;
  EXPECT_NE(last_output.find("pattern lock"), std::string::npos) << last_output;
  EXPECT_EQ(run(transfer_args("transfer_crashed", {"debug.crash_after_step=13"}), "tcrash.log"), 128 + SIGKILL) << last_output;
  ASSERT_EQ(run({"resume", tmp.str("transfer_crashed")}, "tresume.log"), 0) << last_output;
  const auto transferred = weights("transfer/final"), transferred_resumed = weights("transfer_crashed/final");
  int64_t moved = 0;
  for (const auto& [name, w] : sparse) {
    if (!(w.dim() == 2 && std::regex_search(name, kEncoderMatrix))) continue;
    const auto& t = transferred.at(name);
    EXPECT_TRUE(torch::equal(t.ne(0), w.ne(0))) << name << ": the zero pattern changed in transfer";
    moved += t.ne(w).sum().item<int64_t>();
    EXPECT_TRUE(torch::equal(t, transferred_resumed.at(name))) << name << " differs after resume";
  }
  EXPECT_GT(moved, 0) << "the kept weights trained";
  for (const auto& l : jsonl("transfer/eval.jsonl")) EXPECT_DOUBLE_EQ(l["sparsity"].get<double>(), static_cast<double>(zeros) / total);

  // 4. QAT with the pattern still locked; the export is int8, its zeros where the pattern has them.
  ASSERT_EQ(run(transfer_args("qat", {"model.path=" + tmp.str("transfer/final"), "quantize.method=qat", "train.lr=1e-4",
                                      "train.duration=12u", "eval.every=12u"}),
                "qat.log"),
            0)
      << last_output;
  EXPECT_NE(last_output.find("8-bit quantization-aware training of 12 linear maps"), std::string::npos) << last_output;
  ASSERT_TRUE(std::filesystem::exists(tmp.str("qat/final/model.int8.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(tmp.str("qat/final/model.safetensors")));
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(tmp.str("qat/final/config.json")))["sculpt_quantization"]["bits"], 8);
  const auto int8 = io::read_int8_weights(tmp.str("qat/final/model.int8.safetensors"));
  ASSERT_EQ(int8.quantized.size(), 12u);
  for (const auto& [name, m] : int8.quantized)
    EXPECT_TRUE(torch::equal(m.q.ne(0), sparse.at(name).ne(0))) << name << ": int8 zeros are not the locked pattern";
  // sculpt eval runs int8 products; the QAT run's own last evaluation ran the fake-quantized model.
  const double qat_accuracy = jsonl("qat/eval.jsonl").back()["accuracy"].get<double>();
  ASSERT_EQ(run({"eval", "--model", tmp.str("qat/final"), "--task", "sst2", "--max-examples", "64", "--max-length", "48", "--batch", "32"}, "eval.log"), 0)
      << last_output;
  EXPECT_NE(last_output.find("12 linear maps run int8 products"), std::string::npos) << last_output;
  const auto report = nlohmann::json::parse(last_output.substr(last_output.find('{')));
  EXPECT_DOUBLE_EQ(report["accuracy"].get<double>(), qat_accuracy);

  // 5. Post-training quantization of the dense teacher, static (calibrated) and dynamic.
  for (const std::string mode : {"static", "dynamic"}) {
    ASSERT_EQ(run({"quantize", "--model", tmp.str("teacher/best"), "--out", tmp.str("ptq_" + mode), "--mode", mode, "--task", "sst2",
                   "--examples", "32", "--max-length", "48"},
                  "ptq.log"),
              0)
        << last_output;
    ASSERT_EQ(run({"eval", "--model", tmp.str("ptq_" + mode), "--task", "sst2", "--max-examples", "64", "--max-length", "48"}, "ptq_eval.log"),
              0)
        << last_output;
    EXPECT_NE(last_output.find("12 linear maps run int8 products"), std::string::npos) << last_output;
  }

  // 6. Zero-shot structured pruning of the dense masked LM (issue 13): Taylor scores on its own
  // masked-LM loss over unlabelled lines, packed with a new SST-2 head: half of the 4 heads and
  // of the 128 neurons go.
  ASSERT_EQ(run({"compress", "--method", "taylor", "--model", tmp.str("mlm/final"), "--task", "sst2", "--text", tmp.str("corpus.txt"),
                 "--examples", "64", "--target", "0.5", "--out", tmp.str("zero_shot"), "--progress", "off"},
                "zero_shot.log"),
            0)
      << last_output;
  const auto zs = nlohmann::json::parse(std::ifstream(tmp.str("zero_shot/compression.json")));
  EXPECT_NE(zs["scores"].get<std::string>().find("of the masked-LM loss over"), std::string::npos) << zs.dump();
  EXPECT_EQ(zs["data"], "the first 64 lines of " + tmp.str("corpus.txt") + ", 15% of the tokens masked (80/10/10)");
  int heads = 0, neurons = 0;
  for (const auto& h : zs["kept"]["heads"]) heads += h.get<int>();
  for (const auto& f : zs["kept"]["ffn"]) neurons += f.get<int>();
  EXPECT_EQ(heads, 2);
  EXPECT_EQ(neurons, 64);
  ASSERT_EQ(run({"eval", "--model", tmp.str("zero_shot"), "--task", "sst2", "--max-examples", "64", "--max-length", "48"}, "zs_eval.log"), 0)
      << last_output;

  // 7. QAT of that packed model: 12 packed maps fake-quantized while it trains, exported as a
  // packed int8 directory whose int8 products score what the fake-quantized model scored.
  ASSERT_EQ(run({"run", kRecipes + "tiny_bert_finetune.yaml", "run.output_root=" + tmp.str(), "run.name=packed_qat",
                 "model.path=" + tmp.str("zero_shot"), "quantize.method=qat", "train.lr=1e-4", "train.duration=12u", "eval.every=12u"},
                "packed_qat.log"),
            0)
      << last_output;
  EXPECT_NE(last_output.find("8-bit quantization-aware training of 12 linear maps"), std::string::npos) << last_output;
  const auto packed_config = nlohmann::json::parse(std::ifstream(tmp.str("packed_qat/final/config.json")));
  EXPECT_EQ(packed_config["sculpt_packed"]["format"], 1);
  EXPECT_EQ(packed_config["sculpt_quantization"]["bits"], 8);
  const double packed_qat_accuracy = jsonl("packed_qat/eval.jsonl").back()["accuracy"].get<double>();
  ASSERT_EQ(run({"eval", "--model", tmp.str("packed_qat/final"), "--task", "sst2", "--max-examples", "64", "--max-length", "48", "--batch",
                 "32"},
                "packed_qat_eval.log"),
            0)
      << last_output;
  EXPECT_NE(last_output.find("12 linear maps run int8 products"), std::string::npos) << last_output;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(last_output.substr(last_output.find('{')))["accuracy"].get<double>(), packed_qat_accuracy);

  // 8. The same zero-shot pruning as a recipe stage before the task fine-tune (issue 13): the
  // one-shot recipe on the masked LM draws its 32 RTE train rows at seed 7 exactly as
  // `sculpt compress --task rte --examples 32 --seed 7` does, masks them alike, keeps the same
  // heads and neurons and packs the same encoder; its new RTE head then trains in the fine-tune
  // stage, and the report has no teacher to compare with (a sweep's compare_to cell is that).
  ASSERT_EQ(run({"run", kRecipes + "tiny_bert_one_shot.yaml", "run.output_root=" + tmp.str(), "run.name=pretrained_taylor",
                 "model.path=" + tmp.str("mlm/final"), "data.task=rte", "data.max_train_examples=0"},
                "pretrained_taylor.log"),
            0)
      << last_output;
  ASSERT_EQ(run({"compress", "--method", "taylor", "--model", tmp.str("mlm/final"), "--task", "rte", "--examples", "32", "--seed", "7",
                 "--max-length", "48", "--target", "0.5", "--out", tmp.str("zero_shot_rte"), "--progress", "off"},
                "zero_shot_rte.log"),
            0)
      << last_output;
  const auto cli = nlohmann::json::parse(std::ifstream(tmp.str("zero_shot_rte/compression.json")));
  const auto pre = nlohmann::json::parse(std::ifstream(tmp.str("pretrained_taylor/compression.json")));
  EXPECT_TRUE(pre["teacher"].is_null());
  EXPECT_EQ(pre["new_head"], true);
  EXPECT_EQ(pre["sparsity"]["one_shot"]["scores"], cli["scores"]);
  EXPECT_NE(cli["scores"].get<std::string>().find("masked tokens of 32 examples"), std::string::npos) << cli.dump();
  EXPECT_EQ(pre["sparsity"]["kept"], cli["kept"]);
  const auto recipe_packed = weights("pretrained_taylor/best"), cli_packed = weights("zero_shot_rte");
  ASSERT_EQ(recipe_packed.size(), cli_packed.size());
  int compared = 0;
  for (const auto& [name, w] : recipe_packed) {
    // The masked LM has neither pooler nor classifier: each side draws its own new ones.
    if (name.find("classifier") != std::string::npos || name.find("pooler") != std::string::npos) continue;
    ASSERT_TRUE(cli_packed.count(name)) << name;
    EXPECT_TRUE(torch::equal(w, cli_packed.at(name))) << name;
    ++compared;
  }
  EXPECT_GE(compared, 20);
  const auto tuned = nlohmann::json::parse(std::ifstream(tmp.str("pretrained_taylor/finetune/results.json")));
  EXPECT_EQ(tuned["updates"], 10);
  EXPECT_EQ(pre["finetuned_best"], tuned["best"]);
  // k-means codes trained models only: on a pretrained one the recipe says why and writes nothing.
  EXPECT_NE(run({"run", kRecipes + "tiny_bert_one_shot.yaml", "run.output_root=" + tmp.str(), "run.name=pretrained_kmeans",
                 "model.path=" + tmp.str("mlm/final"), "prune.method=kmeans", "prune.bits=2"},
                "pretrained_kmeans.log"),
            0);
  EXPECT_NE(last_output.find("has no task head; k-means codes a trained model"), std::string::npos) << last_output;
  EXPECT_FALSE(std::filesystem::exists(tmp.str("pretrained_kmeans/best")));
}

}  // namespace
}  // namespace sculpt
