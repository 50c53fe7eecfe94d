// Pruning end to end on a tiny fine-tuned BERT and real SST-2 rows: SP3 (PCA init, masks under
// a target, distillation, best packed model within the target) and CoFi mode with its
// fine-tune stage; the packed model loads in `sculpt eval` / `sculpt forward` and scores what
// the masked student scored; a pruning run killed mid-way resumes bitwise-identically.
#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "sculpt/io/codebook_weights.h"
#include "sculpt/io/safetensors.h"

namespace sculpt {
namespace {

const std::string kRecipes = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/";

class Prune : public testing::TinyTeacherTest {
 protected:
  std::vector<std::string> prune_args(const std::string& recipe, const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"run", kRecipes + recipe, "run.output_root=" + tmp.str(), "run.name=" + name,
                                  "model.path=" + tmp.str("teacher/final")};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  nlohmann::json json(const std::string& rel) { return nlohmann::json::parse(std::ifstream(tmp.str(rel))); }
  std::vector<nlohmann::json> jsonl(const std::string& rel) {
    std::vector<nlohmann::json> out;
    for (const auto& line : testing::read_lines(tmp.str(rel))) out.push_back(nlohmann::json::parse(line));
    return out;
  }
};

TEST_F(Prune, Sp3RunMeetsTheTargetAndThePackedModelScoresLikeTheMaskedStudent) {
  ASSERT_EQ(run(prune_args("tiny_bert_sp3.yaml", "sp3"), "sp3.log"), 0) << last_output;
  EXPECT_NE(last_output.find("PCA init (exact)"), std::string::npos);
  // The log carries the loss terms, the expected size against the target and the kept sizes.
  auto metrics = jsonl("sp3/metrics.jsonl");
  ASSERT_FALSE(metrics.empty());
  for (const char* key : {"pred_loss", "layer_loss", "lagrangian", "expected_remaining", "target_now", "lambda1", "kept"})
    EXPECT_TRUE(metrics.back().contains(key)) << key;
  EXPECT_EQ(metrics.back()["kept"]["hidden"].size(), 5u);  // 2L + 1 sites
  EXPECT_DOUBLE_EQ(metrics.front()["target_now"].get<double>(), 1.25);  // all kept: (6D^2 + 2DF) / (4D^2 + 2DF), F = 2D
  EXPECT_DOUBLE_EQ(metrics.back()["target_now"].get<double>(), 0.5);

  auto summary = json("sp3/compression.json");
  const double remaining = summary["sparsity"]["packed_remaining"].get<double>();
  EXPECT_LE(remaining, 0.5 + 0.05);  // the best checkpoint is within target + epsilon
  EXPECT_NE(summary["packed_model"].get<std::string>().find("/best"), std::string::npos);
  // The packed model scores on the dev rows exactly what the masked student scored at the
  // evaluation it was chosen at (masked == packed, on real data).
  auto results = json("sp3/results.json");
  const int64_t best_step = results["best"]["step"];
  double student_accuracy = -1;
  for (const auto& e : jsonl("sp3/eval.jsonl"))
    if (e["step"] == best_step) {
      student_accuracy = e["accuracy"];
      EXPECT_NEAR(e["packed_remaining"].get<double>(), remaining, 1e-12);
    }
  EXPECT_DOUBLE_EQ(summary["packed"]["accuracy"].get<double>(), student_accuracy);

  // The packed directory is a checkpoint like any other for eval and forward.
  auto config = json("sp3/best/config.json");
  ASSERT_TRUE(config.contains("sculpt_packed"));
  EXPECT_EQ(config["sculpt_packed"]["layers"].size(), 2u);
  ASSERT_EQ(run({"eval", "--model", tmp.str("sp3/best"), "--task", "sst2", "--data", testing::shared_path("data/glue"), "--device", "cpu"},
                "eval.log"),
            0)
      << last_output;
  auto e = nlohmann::json::parse(last_output.substr(last_output.find('{')));
  EXPECT_EQ(e["examples"], 872);
  // On the run's own evaluation rows (the first 64, at length 48) it scores what the run reported.
  ASSERT_EQ(run({"eval", "--model", tmp.str("sp3/best"), "--task", "sst2", "--data", testing::shared_path("data/glue"), "--device",
                 "cpu", "--max-examples", "64", "--max-length", "48"},
                "eval64.log"),
            0)
      << last_output;
  e = nlohmann::json::parse(last_output.substr(last_output.find('{')));
  EXPECT_EQ(e["examples"], 64);
  EXPECT_DOUBLE_EQ(e["accuracy"].get<double>(), summary["packed"]["accuracy"].get<double>()) << e;
  // `sculpt forward` runs it too: logits, loss and gradient norms of the packed parameters.
  io::write_safetensors(tmp.str("in.safetensors"), {{"input_ids", torch::randint(5, 900, {2, 7})}, {"labels", torch::tensor({0, 1})}});
  ASSERT_EQ(run({"forward", "--model", tmp.str("sp3/best"), "--inputs", tmp.str("in.safetensors"), "--out", tmp.str("out.safetensors")},
                "forward.log"),
            0)
      << last_output;
  auto out = io::read_safetensors(tmp.str("out.safetensors")).tensors;
  EXPECT_EQ(out.at("logits").sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_TRUE(out.count("loss") && out.count("grad_norms"));
}

TEST_F(Prune, KilledMidPruningResumesBitwiseIdentical) {
  ASSERT_EQ(run(prune_args("tiny_bert_sp3.yaml", "full"), "full.log"), 0) << last_output;
  // Killed after update 38: past the start of both mask groups and mid-ramp; checkpoint at 35.
  EXPECT_EQ(run(prune_args("tiny_bert_sp3.yaml", "cut", {"debug.crash_after_step=38"}), "cut.log"), 128 + SIGKILL) << last_output;
  ASSERT_EQ(run({"resume", tmp.str("cut")}, "resume.log"), 0) << last_output;
  EXPECT_NE(last_output.find("resumed from"), std::string::npos) << last_output;
  // The checkpoint holds the compactors: no second PCA (minutes on a real model), same result.
  EXPECT_NE(last_output.find("PCA init skipped"), std::string::npos) << last_output;
  EXPECT_EQ(last_output.find("PCA init (exact)"), std::string::npos) << last_output;
  auto strip = [](std::vector<nlohmann::json> rows) {
    for (auto& r : rows) r.erase("samples_per_s"), r.erase("tokens_per_s"), r.erase("elapsed_s"), r.erase("eval_seconds");
    return rows;
  };
  EXPECT_EQ(strip(jsonl("full/metrics.jsonl")), strip(jsonl("cut/metrics.jsonl")));
  EXPECT_EQ(strip(jsonl("full/eval.jsonl")), strip(jsonl("cut/eval.jsonl")));
  for (const char* dir : {"final", "best"}) {
    auto a = io::read_safetensors(tmp.str(std::string("full/") + dir + "/model.safetensors")).tensors;
    auto b = io::read_safetensors(tmp.str(std::string("cut/") + dir + "/model.safetensors")).tensors;
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << dir << " " << k;
  }
  EXPECT_EQ(json("full/compression.json")["packed"], json("cut/compression.json")["packed"]);
}

// The size at every logged update from `from` on: the controller's trajectory.
std::vector<double> sizes(const std::vector<nlohmann::json>& metrics, const char* key, int64_t from) {
  std::vector<double> out;
  for (const auto& m : metrics)
    if (m.contains(key) && m["step"].get<int64_t>() >= from) out.push_back(m[key].get<double>());
  return out;
}

TEST_F(Prune, SparsityControlLandsOnTheTargetAtOneAndTwoThreads) {
  // Both methods at target 0.5, ramp over updates 5-25, 80 updates, every update logged. The
  // default controller (anti-windup with lead, lagrangian.h) settles on the target and never
  // swings past it by more than a point, at 1 and 2 threads.
  for (const std::string threads : {"1", "2"}) {
    for (const auto& [recipe, key] : {std::pair<std::string, const char*>{"tiny_bert_cofi.yaml", "expected_sparsity"},
                                      {"tiny_bert_sp3.yaml", "expected_remaining"}}) {
      const bool cofi = recipe.find("cofi") != std::string::npos;
      const std::string name = std::string(cofi ? "cofi_" : "sp3_") + threads;
      ASSERT_EQ(run(prune_args(recipe, name, {"prune.finetune=0u", "train.duration=80u", "logging.every=1u", "run.threads=" + threads}),
                    name + ".log"),
                0)
          << last_output;
      auto all = sizes(jsonl(name + "/metrics.jsonl"), key, 0);
      ASSERT_EQ(all.size(), 80u) << name;
      // Settled. Measured: CoFi within 1.06 points from update 50 (a two-update chatter at this
      // recipe's mask_lr of 0.5), SP3 within 0.49 point from update 56 (its masks move later:
      // its structures start at update 30).
      for (double s : sizes(jsonl(name + "/metrics.jsonl"), key, cofi ? 50 : 56)) EXPECT_NEAR(s, 0.5, cofi ? 0.0125 : 0.0075) << name;
      // Never past the target by more than a point on the pruned side.
      for (double s : all) EXPECT_TRUE(cofi ? s <= 0.51 : s >= 0.49) << name << " " << s;
    }
  }
  // SP3's and CoFi's own unbounded ascent, same runs: the wound-up lambda1 drives CoFi to
  // 0.998 pruned (nothing left) and SP3 to 6.4% remaining against the target of 50%.
  ASSERT_EQ(run(prune_args("tiny_bert_cofi.yaml", "ascent_cofi", {"prune.finetune=0u", "train.duration=80u", "logging.every=1u", "prune.controller=ascent"}),
                "ascent_cofi.log"),
            0)
      << last_output;
  auto cofi = sizes(jsonl("ascent_cofi/metrics.jsonl"), "expected_sparsity", 0);
  EXPECT_NEAR(*std::max_element(cofi.begin(), cofi.end()), 0.998, 0.001);
  ASSERT_EQ(run(prune_args("tiny_bert_sp3.yaml", "ascent_sp3", {"train.duration=80u", "logging.every=1u", "prune.controller=ascent"}),
                "ascent_sp3.log"),
            0)
      << last_output;
  auto sp3 = sizes(jsonl("ascent_sp3/metrics.jsonl"), "expected_remaining", 0);
  EXPECT_NEAR(*std::min_element(sp3.begin(), sp3.end()), 0.064, 0.002);
}

TEST_F(Prune, CofiModeWithFineTuneStage) {
  // This test is about the stage after packing, so it needs a best/ within the target. The tiny
  // model quantises coarsely (2 heads and an MHA/FFN scalar per layer): under the default
  // controller its expected size settles on 0.50 while the packed one (whole blocks kept at
  // keep probability >= 0.5) stays at 0.29 in 100 updates; SP3's/CoFi's own ascent overshoots to
  // saturated masks and lands a packed model inside the window.
  ASSERT_EQ(run(prune_args("tiny_bert_cofi.yaml", "cofi", {"prune.controller=ascent"}), "cofi.log",
                {"SCULPT_CACHE=" + tmp.str("cofi_cache")}),
            0)
      << last_output;
  // Each split is tokenized once; the packed model's report (dev) and the fine-tune stage (train
  // and dev) read the token cache.
  auto lines_with = [&](const std::string& a, const std::string& b) {
    int n = 0;
    for (size_t at = 0; (at = last_output.find(a, at)) != std::string::npos; ++at) {
      const auto end = last_output.find('\n', at);
      n += last_output.substr(at, end - at).find(b) != std::string::npos;
    }
    return n;
  };
  EXPECT_EQ(lines_with("[data] sst2 train: ", "tokenized"), 1) << last_output;
  EXPECT_EQ(lines_with("[data] sst2 dev: ", "tokenized"), 1);
  EXPECT_EQ(lines_with("[data] sst2 train: ", "from the token cache"), 1);
  EXPECT_EQ(lines_with("[data] sst2 dev: ", "from the token cache"), 2);
  auto metrics = jsonl("cofi/metrics.jsonl");
  ASSERT_FALSE(metrics.empty());
  EXPECT_TRUE(metrics.back().contains("expected_sparsity"));
  EXPECT_FALSE(metrics.back()["kept"].contains("qk_dims"));  // whole heads only
  auto hidden = metrics.back()["kept"]["hidden"];
  for (const auto& h : hidden) EXPECT_EQ(h, hidden[0]);  // one shared hidden mask
  auto summary = json("cofi/compression.json");
  EXPECT_GE(summary["sparsity"]["packed_sparsity"].get<double>(), 0.5 - 0.05);
  ASSERT_TRUE(summary.contains("finetuned"));
  auto ft = json("cofi/finetune/results.json");
  EXPECT_EQ(ft["updates"], 20);
  // The fine-tune stage is a run of its own, from the packed model, and as CoFi's: it keeps
  // distilling from the teacher with the pruning run's weights, at a constant learning rate,
  // with the embeddings frozen.
  auto resolved = testing::read_lines(tmp.str("cofi/finetune/recipe.resolved.yaml"));
  std::string text;
  for (const auto& l : resolved) text += l + "\n";
  EXPECT_EQ(text.find("prune:"), std::string::npos);
  EXPECT_NE(text.find(tmp.str("cofi/best")), std::string::npos);
  EXPECT_NE(text.find("teacher: " + tmp.str("teacher/final")), std::string::npos) << text;
  EXPECT_NE(text.find("lr_schedule: constant"), std::string::npos);
  auto ft_metrics = jsonl("cofi/finetune/metrics.jsonl");
  ASSERT_EQ(ft_metrics.size(), 4u);  // every 5 of 20 updates
  for (const auto& m : ft_metrics) {
    EXPECT_DOUBLE_EQ(m["lr"].get<double>(), 1e-4);  // no decay
    EXPECT_TRUE(m.contains("pred_loss") && m.contains("layer_loss")) << m.dump();
  }
  auto packed = io::read_safetensors(tmp.str("cofi/best/model.safetensors")).tensors;
  auto tuned = io::read_safetensors(tmp.str("cofi/finetune/final/model.safetensors")).tensors;
  for (const char* k : {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
                        "bert.embeddings.LayerNorm.weight"})
    EXPECT_TRUE(torch::equal(packed.at(k), tuned.at(k))) << k << " moved";
  EXPECT_FALSE(torch::equal(packed.at("bert.encoder.layer.0.intermediate.dense.weight"),
                            tuned.at("bert.encoder.layer.0.intermediate.dense.weight")));
  // `finetune_as: plain` is the old stage: the task loss with a decaying rate.
  ASSERT_EQ(run(prune_args("tiny_bert_cofi.yaml", "plain", {"prune.finetune_as=plain", "prune.controller=ascent"}), "plain.log"), 0)
      << last_output;
  auto plain = jsonl("plain/finetune/metrics.jsonl");
  EXPECT_FALSE(plain.back().contains("pred_loss"));
  EXPECT_LT(plain.back()["lr"].get<double>(), 1e-4);
}

TEST_F(Prune, CofisOwnSwitchesRunEndToEndAndPackExactly) {
  // CoFi's code details on: FFN-neuron masks from log alpha 0, a removed block skips its norm,
  // layer distillation only onto existing MHA blocks. The packed model still scores exactly what
  // the masked student scored at the chosen evaluation. (Packed sizes settle at 0.41-0.42 against
  // the expected 0.50 here, see CofiModeWithFineTuneStage: epsilon 0.1 lets them count.)
  ASSERT_EQ(run(prune_args("tiny_bert_cofi.yaml", "switches",
                           {"prune.finetune=0u", "prune.intermediate_log_alpha=0", "prune.skip_empty_block_norm=true", "prune.layer_filter=mha",
                            "prune.epsilon=0.1"}),
                "switches.log"),
            0)
      << last_output;
  auto resolved = testing::read_lines(tmp.str("switches/recipe.resolved.yaml"));
  std::string text;
  for (const auto& l : resolved) text += l + "\n";
  EXPECT_NE(text.find("layer_filter: mha"), std::string::npos) << text;
  EXPECT_NE(text.find("skip_empty_block_norm: true"), std::string::npos) << text;
  auto results = json("switches/results.json");
  auto summary = json("switches/compression.json");
  const int64_t best_step = results["best"]["step"];
  ASSERT_GE(best_step, 0) << results.dump();
  int found = 0;
  for (const auto& e : jsonl("switches/eval.jsonl"))
    if (e["step"] == best_step) {
      ++found;
      EXPECT_DOUBLE_EQ(summary["packed"]["accuracy"].get<double>(), e["accuracy"].get<double>());
      EXPECT_NEAR(summary["sparsity"]["packed_sparsity"].get<double>(), e["packed_sparsity"].get<double>(), 1e-12);
    }
  EXPECT_EQ(found, 1);
}

TEST_F(Prune, ValidateAndRunRefuseAWrongTeacher) {
  // A packed model (or an untrained/unlabelled one) is no teacher: said before any work.
  ASSERT_EQ(run(prune_args("tiny_bert_sp3.yaml", "sp3"), "sp3.log"), 0) << last_output;
  EXPECT_EQ(run({"validate", kRecipes + "tiny_bert_sp3.yaml", "model.path=" + tmp.str("teacher/final")}, "v.log"), 0) << last_output;
  EXPECT_NE(run({"validate", kRecipes + "tiny_bert_sp3.yaml", "model.path=" + tmp.str("sp3/best")}, "v2.log"), 0);
  EXPECT_NE(last_output.find("is a packed model"), std::string::npos) << last_output;
  EXPECT_NE(run(prune_args("tiny_bert_sp3.yaml", "again", {"model.path=" + tmp.str("sp3/best")}), "again.log"), 0);
  EXPECT_NE(last_output.find("is a packed model"), std::string::npos) << last_output;
  EXPECT_NE(run(prune_args("tiny_bert_sp3.yaml", "stsb", {"data.task=stsb"}), "stsb.log"), 0);
  EXPECT_NE(last_output.find("classifier, num_labels 1"), std::string::npos) << last_output;
}

TEST_F(Prune, OneShotRecipeCompressesEvaluatesAndFineTunes) {
  ASSERT_EQ(run(prune_args("tiny_bert_one_shot.yaml", "taylor"), "taylor.log"), 0) << last_output;
  EXPECT_NE(last_output.find("[prune] taylor at 0.5"), std::string::npos) << last_output;
  auto summary = json("taylor/compression.json");
  EXPECT_EQ(summary["method"], "taylor");
  // Half of the 4 heads and 128 neurons: half of the encoder's weight matrices, exactly.
  EXPECT_DOUBLE_EQ(summary["sparsity"]["packed_sparsity"].get<double>(), 0.5);
  EXPECT_EQ(summary["sparsity"]["one_shot"]["scores"],
            "first-order Taylor |w * dL/dw| of the task loss over 32 labelled examples");
  // The packed model scores on the run's dev rows what `sculpt eval` gives it on the same rows.
  ASSERT_EQ(run({"eval", "--model", tmp.str("taylor/best"), "--task", "sst2", "--data", testing::shared_path("data/glue"), "--device",
                 "cpu", "--max-examples", "64", "--max-length", "48"},
                "eval.log"),
            0)
      << last_output;
  auto e = nlohmann::json::parse(last_output.substr(last_output.find('{')));
  EXPECT_DOUBLE_EQ(summary["packed"]["accuracy"].get<double>(), e["accuracy"].get<double>());
  EXPECT_EQ(json("taylor/finetune/results.json")["updates"], 10);
  ASSERT_TRUE(summary.contains("finetuned"));
  // Resuming a finished one-shot run compresses nothing again.
  ASSERT_EQ(run({"resume", tmp.str("taylor")}, "resume.log"), 0) << last_output;
  EXPECT_NE(last_output.find("holds the taylor model already"), std::string::npos) << last_output;

  // kmeans: best/ holds the teacher's codes exactly as `sculpt compress --method kmeans` writes
  // them at the run's seed, every size column at "all kept"; the fine-tune stage trains the
  // centroids of the same indices.
  ASSERT_EQ(run(prune_args("tiny_bert_one_shot.yaml", "kmeans", {"prune.method=kmeans", "prune.bits=2"}), "kmeans.log"), 0)
      << last_output;
  EXPECT_NE(last_output.find("[prune] kmeans at 2 bits"), std::string::npos) << last_output;
  EXPECT_NE(last_output.find("centroid fine-tuning of 17 shared matrices"), std::string::npos) << last_output;
  ASSERT_EQ(run({"compress", "--method", "kmeans", "--bits", "2", "--seed", "7", "--model", tmp.str("teacher/final"), "--out",
                 tmp.str("kmeans_cli"), "--progress", "off"},
                "kmeans_cli.log"),
            0)
      << last_output;
  const auto codes = io::read_codebook_contents(tmp.str("kmeans/best/model.codebook.safetensors"));
  const auto cli = io::read_codebook_contents(tmp.str("kmeans_cli/model.codebook.safetensors"));
  const auto tuned = io::read_codebook_contents(tmp.str("kmeans/finetune/final/model.codebook.safetensors"));
  ASSERT_EQ(codes.coded.size(), 17u);
  for (const auto& [name, c] : codes.coded) {
    EXPECT_TRUE(torch::equal(c.codebook, cli.coded.at(name).codebook)) << name;
    EXPECT_TRUE(torch::equal(c.indices, cli.coded.at(name).indices)) << name;
    EXPECT_TRUE(torch::equal(c.indices, tuned.coded.at(name).indices)) << name << ": the fine-tune moved an index";
    EXPECT_FALSE(torch::equal(c.codebook, tuned.coded.at(name).codebook)) << name << ": its centroids did not train";
  }
  auto ks = json("kmeans/compression.json");
  EXPECT_EQ(ks["method"], "kmeans");
  EXPECT_DOUBLE_EQ(ks["sparsity"]["packed_remaining"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(ks["sparsity"]["packed_sparsity"].get<double>(), 0.0);
  EXPECT_EQ(ks["sparsity"]["one_shot"]["bits"], 2);
  EXPECT_EQ(json("kmeans_cli/compression.json")["achieved"], ks["sparsity"]["one_shot"]["achieved"]);
  ASSERT_EQ(run({"eval", "--model", tmp.str("kmeans/best"), "--task", "sst2", "--data", testing::shared_path("data/glue"), "--device",
                 "cpu", "--max-examples", "64", "--max-length", "48"},
                "kmeans_eval.log"),
            0)
      << last_output;
  e = nlohmann::json::parse(last_output.substr(last_output.find('{')));
  EXPECT_DOUBLE_EQ(ks["packed"]["accuracy"].get<double>(), e["accuracy"].get<double>());
  EXPECT_EQ(json("kmeans/finetune/results.json")["updates"], 10);
}

TEST_F(Prune, RecipeErrorsNameTheKey) {
  EXPECT_NE(run(prune_args("tiny_bert_sp3.yaml", "bad", {"prune.method=magic"}), "bad.log"), 0);
  EXPECT_NE(last_output.find("prune.method"), std::string::npos) << last_output;
  EXPECT_NE(run(prune_args("tiny_bert_cofi.yaml", "bad2", {"prune.init=exact"}), "bad2.log"), 0);
  EXPECT_NE(last_output.find("prune.init"), std::string::npos) << last_output;
}

}  // namespace
}  // namespace sculpt
