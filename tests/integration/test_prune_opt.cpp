// SP3 pruning of OPT end to end through the CLI: as a causal LM (recipes/tests/tiny_opt_clm_sp3.yaml,
// the tiny OPT fixture distilled on real SST-2 sentences), the best packed OPT chosen by dev
// perplexity within the target, scored beside the teacher at exactly the masked student's
// perplexity, its size the map table's count, loaded by eval and bench; a run killed mid-pruning
// resumes bitwise. As an SST-2 classifier (recipes/tests/tiny_opt_sst2_sp3.yaml): the best packed
// classifier by accuracy, scored at exactly the masked student's accuracy, then fine-tuned at its
// packed shapes. T5 on SST-2 as text-to-text (recipes/tests/tiny_t5_glue_sp3.yaml): the best packed
// T5 by generated answers, its size the map table's count, a killed run resumed bitwise. A packed
// T5 directory from partial masks runs in `sculpt forward`, logits and greedy generation equal to
// the masked model's, and in `bench infer --generate`.
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "decoder_masks.h"
#include "sculpt/compress/pack_decoder.h"
#include "sculpt/io/codebook_weights.h"
#include "sculpt/io/safetensors.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"

namespace sculpt {
namespace {

const std::string kRecipe = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_opt_clm_sp3.yaml";

class PruneOpt : public testing::CliTest {
 protected:
  void SetUp() override {
    testing::CliTest::SetUp();
    if (IsSkipped()) return;
    if (testing::shared_path("fixtures/hf/opt_causal_lm").empty())
      GTEST_SKIP() << "needs ../shared/fixtures/hf/opt_causal_lm (set SCULPT_SHARED); not found, skipped";
    // Local text: real SST-2 train sentences (the label column dropped).
    std::ofstream out(tmp.str("corpus.txt"));
    int n = 0;
    for (const auto& line : testing::read_lines(testing::shared_path("data/glue/SST-2/train.tsv")))
      if (n++ > 0 && n < 1500) out << line.substr(0, line.find('\t')) << "\n";
  }
  std::vector<std::string> args(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"run", kRecipe, "run.output_root=" + tmp.str(), "run.name=" + name,
                                  "data.train_file=" + tmp.str("corpus.txt")};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  nlohmann::json json(const std::string& rel) { return nlohmann::json::parse(std::ifstream(tmp.str(rel))); }
  // Runs A and B logged the same metrics and evaluations (timings aside) and wrote the same
  // weights in each of DIRS.
  void expect_same_run(const std::string& a, const std::string& b, const std::vector<std::string>& dirs) {
    auto strip = [](std::vector<nlohmann::json> rows) {
      for (auto& r : rows) r.erase("samples_per_s"), r.erase("tokens_per_s"), r.erase("elapsed_s"), r.erase("eval_seconds");
      return rows;
    };
    EXPECT_EQ(strip(jsonl(a + "/metrics.jsonl")), strip(jsonl(b + "/metrics.jsonl")));
    EXPECT_EQ(strip(jsonl(a + "/eval.jsonl")), strip(jsonl(b + "/eval.jsonl")));
    for (const auto& dir : dirs) {
      auto wa = io::read_safetensors(tmp.str(a + "/" + dir + "/model.safetensors")).tensors;
      auto wb = io::read_safetensors(tmp.str(b + "/" + dir + "/model.safetensors")).tensors;
      ASSERT_EQ(wa.size(), wb.size()) << dir;
      for (const auto& [k, v] : wa) EXPECT_TRUE(torch::equal(v, wb.at(k))) << dir << " " << k;
    }
  }
  std::vector<nlohmann::json> jsonl(const std::string& rel) {
    std::vector<nlohmann::json> out;
    for (const auto& line : testing::read_lines(tmp.str(rel))) out.push_back(nlohmann::json::parse(line));
    return out;
  }
};

TEST_F(PruneOpt, Sp3PacksTheBestDecoderByPerplexityAndAKilledRunResumesBitwise) {
  ASSERT_EQ(run(args("full"), "full.log"), 0) << last_output;
  EXPECT_NE(last_output.find("the student starts equal to the teacher"), std::string::npos) << last_output;
  auto metrics = jsonl("full/metrics.jsonl");
  ASSERT_FALSE(metrics.empty());
  EXPECT_GT(metrics.back()["pred_loss"].get<double>(), 0.0);  // next-token KL of a student that moved

  auto summary = json("full/compression.json");
  EXPECT_EQ(summary["metric"], "perplexity");
  EXPECT_NE(summary["packed_model"].get<std::string>().find("/best"), std::string::npos) << summary;
  const double remaining = summary["sparsity"]["packed_remaining"].get<double>();
  EXPECT_LE(remaining, 0.5 + 0.05);
  // The size is the map table's exact count: the packed directory's q, k, v, o, fc1, fc2 weights
  // over the dense 2 x (4 x 64 x 64 + 2 x 64 x 128) = 65,536.
  auto packed = models::load_opt(tmp.str("full/best"));
  EXPECT_EQ(summary["sparsity"]["dense_map_weights"].get<double>(), 65536.0);
  EXPECT_DOUBLE_EQ(remaining, static_cast<double>(compress::linear_map_weights(*packed)) / 65536.0);
  EXPECT_EQ(packed->config.layer_shapes.size(), 2u);
  EXPECT_EQ(json("full/best/config.json")["sculpt_packed"]["format"], 1);
  // The packed model scores what the masked student scored at the chosen evaluation.
  const int64_t best_step = json("full/results.json")["best"]["step"];
  double student = -1;
  for (const auto& e : jsonl("full/eval.jsonl"))
    if (e["step"] == best_step) {
      student = e["perplexity"];
      EXPECT_NEAR(e["packed_remaining"].get<double>(), remaining, 1e-12);
    }
  const double ppl = summary["packed"]["perplexity"].get<double>();
  EXPECT_NEAR(ppl, student, 1e-4 * student);
  EXPECT_NEAR(ppl, std::exp(summary["packed"]["loss"].get<double>()), 1e-9 * ppl);
  EXPECT_NEAR(summary["retained"].get<double>(), summary["teacher"]["perplexity"].get<double>() / ppl, 1e-12);

  // `sculpt eval --task clm` loads the packed directory and scores a text file (every block),
  // perplexity exp(mean next-token loss) over blocks x 31 tokens; the teacher beside it.
  for (const auto& [dir, name] : {std::pair{tmp.str("full/best"), "packed"}, {testing::shared_path("fixtures/hf/opt_causal_lm"), "teacher"}}) {
    ASSERT_EQ(run({"eval", "--model", dir, "--task", "clm", "--data", tmp.str("corpus.txt"), "--max-length", "32", "--device", "cpu",
                   "--max-examples", "20"},
                  std::string("eval_") + name + ".log"),
              0)
        << last_output;
    auto e = nlohmann::json::parse(last_output.substr(last_output.find('{')));
    EXPECT_EQ(e["tokens"], 20 * 31) << e;
    EXPECT_NEAR(e["perplexity"].get<double>(), std::exp(e["loss"].get<double>()), 1e-9 * e["perplexity"].get<double>());
  }
  // `sculpt bench infer --generate`: both generate 4 tokens per prompt through their KV caches.
  ASSERT_EQ(run({"bench", "infer", "--model", testing::shared_path("fixtures/hf/opt_causal_lm"), "--model", tmp.str("full/best"),
                 "--generate", "4", "--shape", "2x8", "--steps", "1", "--warmup", "0", "--device", "cpu"},
                "bench.log"),
            0)
      << last_output;
  EXPECT_NE(last_output.find("2x8+4"), std::string::npos) << last_output;
  EXPECT_NE(last_output.find("new tokens/s"), std::string::npos) << last_output;

  // Killed after update 23: both mask groups on and mid-ramp; the checkpoint at 21 holds the
  // rotation, the masks and the Lagrangian.
  EXPECT_EQ(run(args("cut", {"debug.crash_after_step=23"}), "cut.log"), 128 + SIGKILL) << last_output;
  ASSERT_EQ(run({"resume", tmp.str("cut")}, "resume.log"), 0) << last_output;
  EXPECT_NE(last_output.find("resumed from"), std::string::npos) << last_output;
  expect_same_run("full", "cut", {"final", "best"});
}

// prune.stream_masks per_site: a hidden mask per residual site (5 for 2 layers); the best packed
// classifier has each site at the width its mask keeps, counts exactly as the table, and scores
// what the masked student scored.
TEST_F(PruneOpt, PerSiteStreamMasksPackEachSiteAtItsOwnWidth) {
  const std::vector<std::string> per_site = {"run", std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_opt_sst2_sp3.yaml",
                                             "run.output_root=" + tmp.str(), "prune.stream_masks=per_site", "prune.finetune=6u",
                                             "prune.finetune_lr=1e-3"};
  auto with = [&](std::vector<std::string> a, const std::vector<std::string>& extra) {
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  ASSERT_EQ(run(with(per_site, {"run.name=per_site"}), "per_site.log"), 0) << last_output;
  auto summary = json("per_site/compression.json");
  const double remaining = summary["sparsity"]["packed_remaining"].get<double>();
  EXPECT_LE(remaining, 0.5 + 0.05);
  auto packed = models::load_opt(tmp.str("per_site/best"));
  EXPECT_DOUBLE_EQ(remaining, static_cast<double>(compress::linear_map_weights(*packed)) / 65536.0);
  const auto report = json("per_site/best/pruning.json");
  EXPECT_EQ(report["stream_masks"], "per_site");
  const auto hidden = report["kept"]["hidden"].get<std::vector<int64_t>>();
  ASSERT_EQ(hidden.size(), 5u);
  EXPECT_EQ(packed->config.hidden_size, hidden[0]);
  for (size_t l = 0; l < 2; ++l) {
    EXPECT_EQ(static_cast<int64_t>(packed->config.layer_shapes[l].attn_from.size()), hidden[2 * l + 1]) << l;
    EXPECT_EQ(static_cast<int64_t>(packed->config.layer_shapes[l].ffn_from.size()), hidden[2 * l + 2]) << l;
  }
  const int64_t best_step = json("per_site/results.json")["best"]["step"];
  double student = -1;
  for (const auto& e : jsonl("per_site/eval.jsonl"))
    if (e["step"] == best_step) student = e["accuracy"];
  EXPECT_DOUBLE_EQ(summary["packed"]["accuracy"].get<double>(), student);
  // `sculpt eval` loads the packed classifier and scores the same dev rows the run scored.
  ASSERT_EQ(run({"eval", "--model", tmp.str("per_site/best"), "--task", "sst2", "--max-length", "48", "--max-examples", "128",
                 "--device", "cpu"},
                "per_site_eval.log"),
            0)
      << last_output;
  const auto printed = nlohmann::json::parse(last_output.substr(last_output.find('{')));
  EXPECT_EQ(printed["examples"], 128);
  EXPECT_DOUBLE_EQ(printed["accuracy"].get<double>(), summary["packed"]["accuracy"].get<double>());
  // The fine-tune stage trains the packed model with its shortcut scales; killed mid-pruning, the
  // run resumes to the same logs, packed model (shortcuts included) and fine-tuned weights.
  EXPECT_EQ(json("per_site/finetune/results.json")["updates"], 6);
  EXPECT_EQ(run(with(per_site, {"run.name=cut", "debug.crash_after_step=23"}), "cut.log"), 128 + SIGKILL) << last_output;
  ASSERT_EQ(run({"resume", tmp.str("cut")}, "resume.log"), 0) << last_output;
  expect_same_run("per_site", "cut", {"best", "finetune/final"});
  EXPECT_TRUE(io::read_safetensors(tmp.str("cut/best/model.safetensors")).tensors.count("model.decoder.layers.0.sculpt_attn_shortcut"));
}

TEST_F(PruneOpt, Sp3PacksTheBestSst2ClassifierByAccuracyWithinTheTarget) {
  ASSERT_EQ(run({"run", std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_opt_sst2_sp3.yaml", "run.output_root=" + tmp.str(),
                 "prune.finetune=6u", "prune.finetune_lr=1e-3"},
                "sst2.log"),
            0)
      << last_output;
  auto summary = json("tiny_opt_sst2_sp3/compression.json");
  EXPECT_EQ(summary["metric"], "accuracy");
  EXPECT_NE(summary["packed_model"].get<std::string>().find("/best"), std::string::npos) << summary;
  const double remaining = summary["sparsity"]["packed_remaining"].get<double>();
  EXPECT_LE(remaining, 0.5 + 0.05);
  auto packed = models::load_opt(tmp.str("tiny_opt_sst2_sp3/best"));
  EXPECT_EQ(packed->config.head, models::HeadType::sequence_classification);
  EXPECT_DOUBLE_EQ(remaining, static_cast<double>(compress::linear_map_weights(*packed)) / 65536.0);
  const int64_t best_step = json("tiny_opt_sst2_sp3/results.json")["best"]["step"];
  double student = -1;
  for (const auto& e : jsonl("tiny_opt_sst2_sp3/eval.jsonl"))
    if (e["step"] == best_step) student = e["accuracy"];
  EXPECT_DOUBLE_EQ(summary["packed"]["accuracy"].get<double>(), student);
  EXPECT_NEAR(summary["retained"].get<double>(), student / summary["teacher"]["accuracy"].get<double>(), 1e-12);

  // The fine-tune stage trains the packed OPT as it is (same shapes) and reports its best evaluation.
  EXPECT_EQ(json("tiny_opt_sst2_sp3/finetune/results.json")["updates"], 6);
  const auto tuned_best = json("tiny_opt_sst2_sp3/finetune/results.json")["best"];
  EXPECT_EQ(summary["finetuned_best"], tuned_best);
  double tuned = -1;
  for (const auto& e : jsonl("tiny_opt_sst2_sp3/finetune/eval.jsonl"))
    if (e["step"] == tuned_best["step"]) tuned = e["accuracy"];
  EXPECT_DOUBLE_EQ(tuned_best["value"].get<double>(), tuned);
  auto finetuned = models::load_opt(tmp.str("tiny_opt_sst2_sp3/finetune/best"));
  EXPECT_EQ(compress::linear_map_weights(*finetuned), compress::linear_map_weights(*packed));
  EXPECT_EQ(finetuned->config.hidden_size, packed->config.hidden_size);
}

TEST(PruneT5, Sp3PacksTheBestTextToTextModelWithinTheTargetAndAKilledRunResumesBitwise) {
  if (testing::shared_path("fixtures/hf/t5_small").empty() || testing::shared_path("data/glue/SST-2").empty())
    GTEST_SKIP() << "needs ../shared/fixtures/hf/t5_small and data/glue (SCULPT_SHARED)";
  testing::TempDir tmp;
  const std::string recipe = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_t5_glue_sp3.yaml";
  auto json = [&](const std::string& rel) { return nlohmann::json::parse(std::ifstream(tmp.str(rel))); };
  auto jsonl = [&](const std::string& rel) {
    std::vector<nlohmann::json> out;
    for (const auto& line : testing::read_lines(tmp.str(rel))) out.push_back(nlohmann::json::parse(line));
    return out;
  };
  std::string log;
  ASSERT_EQ(testing::run_cli({"run", recipe, "run.output_root=" + tmp.str(), "run.name=full", "prune.finetune=4u"}, tmp.str("full.log"), &log), 0)
      << log;
  EXPECT_NE(log.find("the student starts equal to the teacher"), std::string::npos) << log;
  auto summary = json("full/compression.json");
  EXPECT_EQ(summary["metric"], "accuracy");
  EXPECT_NE(summary["packed_model"].get<std::string>().find("/best"), std::string::npos) << summary;
  const double remaining = summary["sparsity"]["packed_remaining"].get<double>();
  EXPECT_LE(remaining, 0.5 + 0.05);
  // The size is the map table's exact count: the packed T5's attention (self and cross) and FFN
  // weights over the teacher's, 2 x 4 x 64 x 64 + 2 x 2 x 64 x 128 (encoder) + 2 x 8 x 64 x 64 +
  // 2 x 2 x 64 x 128 (decoder) = 163,840.
  auto packed = models::load_t5(tmp.str("full/best"));
  EXPECT_EQ(summary["sparsity"]["dense_map_weights"].get<double>(), 163840.0);
  EXPECT_DOUBLE_EQ(remaining, static_cast<double>(compress::linear_map_weights(*packed)) / 163840.0);
  EXPECT_EQ(packed->config.layer_shapes.size(), 4u);
  EXPECT_EQ(summary["sparsity"]["kept"]["cross_heads"].size(), 2u) << summary.dump();  // the decoder's cross-attention is masked too
  // The packed model generates what the masked student generated at the chosen evaluation.
  const int64_t best_step = json("full/results.json")["best"]["step"];
  int found = 0;
  for (const auto& e : jsonl("full/eval.jsonl"))
    if (e["step"] == best_step) {
      ++found;
      EXPECT_DOUBLE_EQ(summary["packed"]["accuracy"].get<double>(), e["accuracy"].get<double>());
      EXPECT_DOUBLE_EQ(summary["packed"]["unknown_outputs"].get<double>(), e["unknown_outputs"].get<double>());
      // Teacher-forced target loss: the packed model's equals the masked student's (random weights
      // answer no label word, so accuracy alone would not tell them apart).
      const double loss = e["loss"].get<double>();
      EXPECT_NEAR(summary["packed"]["loss"].get<double>(), loss, 1e-4 * loss);
      EXPECT_NEAR(e["packed_remaining"].get<double>(), remaining, 1e-12);
    }
  EXPECT_EQ(found, 1);
  EXPECT_EQ(json("full/finetune/results.json")["updates"], 4);
  EXPECT_EQ(compress::linear_map_weights(*models::load_t5(tmp.str("full/finetune/final"))), compress::linear_map_weights(*packed));
  // Killed after update 23 (both mask groups on, mid-ramp): resumed, every log line and export is the same.
  EXPECT_EQ(testing::run_cli({"run", recipe, "run.output_root=" + tmp.str(), "run.name=cut", "debug.crash_after_step=23"}, tmp.str("cut.log"),
                             &log),
            128 + SIGKILL)
      << log;
  ASSERT_EQ(testing::run_cli({"resume", tmp.str("cut")}, tmp.str("resume.log"), &log), 0) << log;
  auto strip = [](std::vector<nlohmann::json> rows) {
    for (auto& r : rows) r.erase("samples_per_s"), r.erase("tokens_per_s"), r.erase("elapsed_s"), r.erase("eval_seconds");
    return rows;
  };
  EXPECT_EQ(strip(jsonl("full/metrics.jsonl")), strip(jsonl("cut/metrics.jsonl")));
  EXPECT_EQ(strip(jsonl("full/eval.jsonl")), strip(jsonl("cut/eval.jsonl")));
  const auto a = io::read_safetensors(tmp.str("full/final/model.safetensors")).tensors;
  const auto b = io::read_safetensors(tmp.str("cut/final/model.safetensors")).tensors;
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << k;
}

// prune.stream_masks per_site on T5: 2 x 2 + 2 x 3 + 1 = 11 sites (the embeddings', then after
// each encoder block's self-attention and FFN and each decoder block's self-attention,
// cross-attention and FFN); the packed T5 has each at the width its mask keeps, counts as the
// table, and scores what the masked student scored.
TEST(PruneT5, PerSiteStreamMasksPackEachSiteAtItsOwnWidth) {
  if (testing::shared_path("fixtures/hf/t5_small").empty() || testing::shared_path("data/glue/SST-2").empty())
    GTEST_SKIP() << "needs ../shared/fixtures/hf/t5_small and data/glue (SCULPT_SHARED)";
  testing::TempDir tmp;
  const std::string recipe = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_t5_glue_sp3.yaml";
  auto json = [&](const std::string& rel) { return nlohmann::json::parse(std::ifstream(tmp.str(rel))); };
  std::string log;
  ASSERT_EQ(testing::run_cli({"run", recipe, "run.output_root=" + tmp.str(), "run.name=per_site", "prune.stream_masks=per_site"},
                             tmp.str("per_site.log"), &log),
            0)
      << log;
  auto summary = json("per_site/compression.json");
  const double remaining = summary["sparsity"]["packed_remaining"].get<double>();
  EXPECT_LE(remaining, 0.5 + 0.05);
  auto packed = models::load_t5(tmp.str("per_site/best"));
  EXPECT_DOUBLE_EQ(remaining, static_cast<double>(compress::linear_map_weights(*packed)) / 163840.0);
  const auto hidden = json("per_site/best/pruning.json")["kept"]["hidden"].get<std::vector<int64_t>>();
  ASSERT_EQ(hidden.size(), 11u);
  const auto& s = packed->config.layer_shapes;
  EXPECT_EQ(packed->config.hidden_size, hidden[0]);
  const std::vector<size_t> sizes = {s[0].attn_from.size(), s[0].ffn_from.size(), s[1].attn_from.size(), s[1].ffn_from.size(),
                                     s[2].attn_from.size(), s[2].cross_from.size(), s[2].ffn_from.size(),
                                     s[3].attn_from.size(), s[3].cross_from.size(), s[3].ffn_from.size()};
  for (size_t k = 0; k < sizes.size(); ++k) EXPECT_EQ(static_cast<int64_t>(sizes[k]), hidden[k + 1]) << "site " << k + 1;
  const int64_t best_step = json("per_site/results.json")["best"]["step"];
  int found = 0;
  for (const auto& line : testing::read_lines(tmp.str("per_site/eval.jsonl"))) {
    const auto e = nlohmann::json::parse(line);
    if (e["step"] != best_step) continue;
    ++found;
    const double loss = e["loss"].get<double>();
    EXPECT_NEAR(summary["packed"]["loss"].get<double>(), loss, 1e-4 * loss);
    EXPECT_DOUBLE_EQ(summary["packed"]["accuracy"].get<double>(), e["accuracy"].get<double>());
  }
  EXPECT_EQ(found, 1);
}

// CoFi's masks on the rotated decoders (whole heads, no head dims), its target the pruned share of
// the attention and FFN maps: the packed OPT and T5 land in the window and count exactly.
TEST(PruneDecoderCofi, OptAndT5PackTheBestWithinThePrunedTarget) {
  if (testing::shared_path("fixtures/hf/opt_seqcls").empty() || testing::shared_path("data/glue/SST-2").empty())
    GTEST_SKIP() << "needs ../shared/fixtures/hf and data/glue (SCULPT_SHARED)";
  testing::TempDir tmp;
  for (const auto& [recipe, dense] : {std::pair{std::string("tiny_opt_sst2_sp3.yaml"), 65536.0}, {std::string("tiny_t5_glue_sp3.yaml"), 163840.0}}) {
    std::string log;
    ASSERT_EQ(testing::run_cli({"run", std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/" + recipe, "run.output_root=" + tmp.str(),
                                "run.name=" + recipe, "prune.method=cofi", "prune.target=0.5", "prune.epsilon=0.05", "prune.mask_lr=1.0",
                                "prune.lambda_lr=1.0", "prune.finetune=0u"},
                               tmp.str(recipe + ".log"), &log),
              0)
        << log;
    EXPECT_NE(log.find("cofi pruning of"), std::string::npos) << log;
    const auto summary = nlohmann::json::parse(std::ifstream(tmp.str(recipe + "/compression.json")));
    const auto& sp = summary["sparsity"];
    const double pruned = sp["packed_sparsity"].get<double>();
    EXPECT_GE(pruned, 0.5 - 0.05) << sp.dump();  // CoFi's window starts at target - epsilon
    EXPECT_EQ(sp["dense_map_weights"].get<double>(), dense);
    // The reloaded packed model's own weight count, not the report's.
    const auto dir = tmp.str(recipe + "/best");
    const double kept = static_cast<double>(recipe.rfind("tiny_t5", 0) == 0 ? compress::linear_map_weights(*models::load_t5(dir))
                                                                            : compress::linear_map_weights(*models::load_opt(dir)));
    EXPECT_DOUBLE_EQ(pruned, 1 - kept / dense);
    EXPECT_FALSE(sp["kept"].contains("qk_dims")) << "CoFi prunes whole heads";
  }
}

TEST(PackedT5, ADirectoryForwardsAndGeneratesThroughTheCliAsTheMaskedModel) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/t5_v1_1");
  testing::TempDir tmp;
  auto model = models::load_t5(dir);
  model->eval();
  const auto masks = testing::partial_t5_masks(model->config);
  auto packed = compress::pack_t5(model, masks);
  models::save_t5(packed, tmp.str("packed"));
  auto ids = torch::tensor({{5, 6, 7, 8, 2}, {9, 10, 2, 0, 0}}), attention = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}});
  auto labels = torch::tensor({{11, 12, 2}, {13, 2, -100}});
  io::write_safetensors(tmp.str("in.safetensors"), {{"input_ids", ids}, {"attention_mask", attention}, {"labels", labels},
                                                    {"gen_input_ids", ids}, {"gen_attention_mask", attention}});
  std::string output;
  ASSERT_EQ(testing::run_cli({"forward", "--model", tmp.str("packed"), "--inputs", tmp.str("in.safetensors"), "--out",
                              tmp.str("out.safetensors"), "--max-new-tokens", "5"},
                             tmp.str("forward.log"), &output),
            0)
      << output;
  auto out = io::read_safetensors(tmp.str("out.safetensors")).tensors;
  models::ForwardOptions o;
  o.masks = &masks;
  auto masked = model->forward(ids, attention, {}, {}, labels, o);
  EXPECT_TRUE(testing::all_close(out.at("logits"), masked.logits, 1e-4, 1e-4));
  EXPECT_NEAR(out.at("loss").item<double>(), masked.loss.item<double>(), 1e-4);
  auto [generated, scores] = model->generate(ids, attention, 5, &masks);
  EXPECT_TRUE(torch::equal(out.at("generated_ids"), generated)) << out.at("generated_ids") << "\n" << generated;
  ASSERT_EQ(testing::run_cli({"bench", "infer", "--model", dir, "--model", tmp.str("packed"), "--generate", "4", "--shape", "2x8",
                              "--steps", "1", "--warmup", "0", "--device", "cpu"},
                             tmp.str("bench.log"), &output),
            0)
      << output;
  EXPECT_NE(output.find("2x8+4"), std::string::npos) << output;
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

// The one-shot methods as recipe methods for OPT and T5 (issues 11 and 13): best/ is the packed
// (or sliced, or coded) teacher, its size the map table's exact count, evaluated beside the
// teacher, then the plain fine-tune stage at its packed shapes.
TEST(PruneDecoderOneShot, OptAndT5RecipesCompressAsSculptCompressDoesAndFineTune) {
  if (testing::shared_path("fixtures/hf/t5_small").empty() || testing::shared_path("data/glue/SST-2").empty())
    GTEST_SKIP() << "needs ../shared/fixtures/hf and data/glue (SCULPT_SHARED)";
  testing::TempDir tmp;
  const std::string opt_recipe = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_opt_sst2_sp3.yaml",
                    t5_recipe = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_t5_glue_sp3.yaml";
  auto json = [&](const std::string& rel) { return nlohmann::json::parse(std::ifstream(tmp.str(rel))); };
  std::string log;
  auto run = [&](const std::string& recipe, const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> a = {"run", recipe, "run.output_root=" + tmp.str(), "run.name=" + name, "prune.finetune=4u"};
    a.insert(a.end(), extra.begin(), extra.end());
    return testing::run_cli(a, tmp.str(name + ".log"), &log);
  };
  auto maps = [&](const std::string& rel, auto load) {
    auto m = load(tmp.str(rel));
    return static_cast<double>(compress::linear_map_weights(*m));
  };

  // OPT, magnitude: the recipe's packed classifier is `sculpt compress --method magnitude`'s, weight for weight.
  ASSERT_EQ(run(opt_recipe, "opt_magnitude", {"prune.method=magnitude", "prune.target=0.5"}), 0) << log;
  ASSERT_EQ(testing::run_cli({"compress", "--method", "magnitude", "--model", testing::shared_path("fixtures/hf/opt_seqcls"), "--target",
                              "0.5", "--out", tmp.str("opt_magnitude_cli")},
                             tmp.str("opt_cli.log"), &log),
            0)
      << log;
  const auto recipe_weights = io::read_safetensors(tmp.str("opt_magnitude/best/model.safetensors")).tensors;
  const auto cli_weights = io::read_safetensors(tmp.str("opt_magnitude_cli/model.safetensors")).tensors;
  ASSERT_EQ(recipe_weights.size(), cli_weights.size());
  for (const auto& [name, w] : recipe_weights) EXPECT_TRUE(torch::equal(w, cli_weights.at(name))) << name;
  auto summary = json("opt_magnitude/compression.json");
  EXPECT_EQ(summary["method"], "magnitude");
  EXPECT_DOUBLE_EQ(summary["sparsity"]["packed_remaining"].get<double>(), maps("opt_magnitude/best", models::load_opt) / 65536.0);
  EXPECT_EQ(summary["sparsity"]["kept"], json("opt_magnitude_cli/compression.json")["kept"]);
  EXPECT_TRUE(summary["teacher"].contains("accuracy"));
  EXPECT_EQ(json("opt_magnitude/finetune/results.json")["updates"], 4);
  EXPECT_EQ(maps("opt_magnitude/finetune/best", models::load_opt), maps("opt_magnitude/best", models::load_opt));

  // OPT, Taylor on the task loss over the sampled labelled rows; slicing the stream to 48 of 64 dims.
  ASSERT_EQ(run(opt_recipe, "opt_taylor", {"prune.method=taylor", "prune.target=0.5", "prune.sample_examples=16"}), 0) << log;
  summary = json("opt_taylor/compression.json");
  EXPECT_EQ(summary["sparsity"]["one_shot"]["scores"].get<std::string>().rfind("first-order Taylor |w * dL/dw| of the task loss", 0), 0u)
      << summary.dump();
  EXPECT_NE(summary["sparsity"]["one_shot"]["scores"].get<std::string>().find("of 16 examples"), std::string::npos) << summary.dump();
  EXPECT_DOUBLE_EQ(summary["sparsity"]["packed_remaining"].get<double>(), maps("opt_taylor/best", models::load_opt) / 65536.0);
  ASSERT_EQ(run(opt_recipe, "opt_slice", {"prune.method=slice", "prune.target=0.25", "prune.sample_examples=16"}), 0) << log;
  summary = json("opt_slice/compression.json");
  EXPECT_EQ(models::load_opt(tmp.str("opt_slice/best"))->config.hidden_size, 48);
  EXPECT_EQ(summary["sparsity"]["one_shot"]["achieved"]["hidden_after"], 48);
  // Each attention and FFN map reads or writes the stream once (q, k, v: 64 x 48, o: 48 x 64, fc1:
  // 128 x 48, fc2: 48 x 128): 48 / 64 of the weights remain.
  EXPECT_DOUBLE_EQ(summary["sparsity"]["packed_remaining"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(summary["sparsity"]["packed_remaining"].get<double>(), maps("opt_slice/best", models::load_opt) / 65536.0);

  // T5, activations over its text-to-text train pairs: half of the units, its size the map
  // table's count over 163,840, the packed model scored beside the teacher and fine-tuned.
  ASSERT_EQ(run(t5_recipe, "t5_activation", {"prune.method=activation", "prune.target=0.5", "prune.sample_examples=16"}), 0) << log;
  summary = json("t5_activation/compression.json");
  EXPECT_DOUBLE_EQ(summary["sparsity"]["packed_remaining"].get<double>(), maps("t5_activation/best", models::load_t5) / 163840.0);
  EXPECT_TRUE(summary["teacher"].contains("accuracy"));
  EXPECT_TRUE(summary["packed"].contains("loss"));
  EXPECT_EQ(json("t5_activation/finetune/results.json")["updates"], 4);
  EXPECT_EQ(maps("t5_activation/finetune/best", models::load_t5), maps("t5_activation/best", models::load_t5));

  // T5, k-means at 2 bits: the codes of `sculpt compress --method kmeans`, every index kept by
  // the centroid fine-tune.
  ASSERT_EQ(run(t5_recipe, "t5_kmeans", {"prune.method=kmeans", "prune.bits=2"}), 0) << log;
  EXPECT_NE(log.find("centroid fine-tuning of"), std::string::npos) << log;
  const auto codes = io::read_codebook_contents(tmp.str("t5_kmeans/best/model.codebook.safetensors"));
  const auto tuned = io::read_codebook_contents(tmp.str("t5_kmeans/finetune/final/model.codebook.safetensors"));
  ASSERT_FALSE(codes.coded.empty());
  for (const auto& [name, c] : codes.coded) EXPECT_TRUE(torch::equal(c.indices, tuned.coded.at(name).indices)) << name;
  EXPECT_DOUBLE_EQ(json("t5_kmeans/compression.json")["sparsity"]["packed_remaining"].get<double>(), 1.0);
}

}  // namespace
}  // namespace sculpt
