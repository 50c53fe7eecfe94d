// `sculpt compress` end to end (issue 13) on a tiny BERT fine-tuned on real SST-2 rows: each
// one-shot method writes a model that `sculpt eval` loads, with a compression.json whose sizes
// are the closed-form ones; slicing nothing scores exactly what the teacher scores; k-means
// codes that are already exact round-trip through the loader unchanged.
#include <csignal>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "sculpt/io/codebook_weights.h"
#include "sculpt/io/safetensors.h"

namespace sculpt {
namespace {

class Compress : public testing::TinyTeacherTest {
 protected:
  nlohmann::json json(const std::string& rel) { return nlohmann::json::parse(std::ifstream(tmp.str(rel))); }
  // sculpt compress with --model the teacher; the report it wrote.
  nlohmann::json compress(const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a = {"compress", "--model", tmp.str("teacher/final"), "--out", tmp.str(out), "--progress", "off"};
    a.insert(a.end(), extra.begin(), extra.end());
    EXPECT_EQ(run(a, out + ".log"), 0) << last_output;
    return json(out + "/compression.json");
  }
  // sculpt eval on the run's own 64 dev rows at length 48.
  nlohmann::json eval(const std::string& rel) {
    EXPECT_EQ(run({"eval", "--model", tmp.str(rel), "--task", "sst2", "--data", testing::shared_path("data/glue"), "--device", "cpu",
                   "--max-examples", "64", "--max-length", "48"},
                  rel + ".eval.log"),
              0)
        << last_output;
    return nlohmann::json::parse(last_output.substr(last_output.find('{')));
  }
};

TEST_F(Compress, MagnitudeActivationAndTaylorPruneToTheTargetAndLoadEverywhere) {
  // Teacher: 2 layers of 2 heads (d_head 16, D 32) and 64 neurons. Half of the heads (2 of 4)
  // and half of the neurons (64 of 128) go: half of the weight matrices, by either count.
  auto m = compress("magnitude", {"--method", "magnitude", "--target", "0.5"});
  EXPECT_EQ(m["method"], "magnitude");
  EXPECT_DOUBLE_EQ(m["achieved"]["packed_sparsity"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(m["achieved"]["cost_remaining"].get<double>(), 0.5);
  EXPECT_EQ(m["data"], "none");
  auto e = eval("magnitude");
  EXPECT_EQ(e["examples"], 64);
  // The packed directory is a packed BERT every verb reads (config.json's sculpt_packed block).
  auto config = json("magnitude/config.json");
  ASSERT_TRUE(config.contains("sculpt_packed"));

  // Activations of local text (first lines of SST-2's dev file), APoZ, per layer: every layer
  // keeps 1 of 2 heads and 32 of 64 neurons.
  auto a = compress("activation", {"--method", "activation", "--target", "0.5", "--text", testing::shared_path("data/glue/SST-2/dev.tsv"),
                                   "--examples", "40", "--statistic", "apoz", "--scope", "per_layer"});
  EXPECT_EQ(a["statistic"], "apoz");
  EXPECT_EQ(a["data"], "the first 40 lines of " + testing::shared_path("data/glue/SST-2/dev.tsv"));
  EXPECT_EQ(a["kept"]["heads"], nlohmann::json({1, 1}));
  EXPECT_EQ(a["kept"]["ffn"], nlohmann::json({32, 32}));
  eval("activation");

  // Taylor on 32 labelled train rows, to FLOPs at length 48 with whole blocks: one attention and
  // one FFN block of two go, half of the FLOPs.
  auto t = compress("taylor", {"--method", "taylor", "--target", "0.5", "--task", "sst2", "--data", testing::shared_path("data/glue"),
                               "--examples", "32", "--granularity", "blocks", "--cost", "flops", "--length", "48"});
  EXPECT_EQ(t["data"], "32 random sst2 train examples (seed 0)");
  EXPECT_DOUBLE_EQ(t["achieved"]["cost_remaining"].get<double>(), 0.5);
  EXPECT_EQ(t["achieved"]["length"], 48);
  eval("taylor");

  // Post-training int8 of the packed model (calibrated on 32 SST-2 train rows): its 6 non-empty
  // matrices (the removed blocks' are empty); eval and bench infer run them as int8 products,
  // bench beside the dense teacher, its int8 form and the float packed model.
  for (const auto& [from, to, mode] : {std::tuple{"taylor", "taylor_int8", "static"}, {"teacher/final", "teacher_int8", "dynamic"}}) {
    ASSERT_EQ(run({"quantize", "--model", tmp.str(from), "--out", tmp.str(to), "--mode", mode, "--task", "sst2", "--data",
                   testing::shared_path("data/glue"), "--examples", "32", "--max-length", "48"},
                  std::string(mode) + ".log"),
              0)
        << last_output;
  }
  EXPECT_TRUE(json("taylor_int8/compression.json")["packed"].get<bool>());
  EXPECT_EQ(json("taylor_int8/compression.json")["layers"], 6);
  EXPECT_EQ(json("teacher_int8/compression.json")["layers"], 12);
  eval("taylor_int8");
  EXPECT_NE(last_output.find("6 linear maps run int8 products"), std::string::npos) << last_output;
  ASSERT_EQ(run({"bench", "infer", "--model", tmp.str("teacher/final"), "--model", tmp.str("teacher_int8"), "--model", tmp.str("taylor"),
                 "--model", tmp.str("taylor_int8"), "--shape", "8x32", "--steps", "1", "--warmup", "0", "--device", "cpu"},
                "bench.log"),
            0)
      << last_output;
  for (const char* dir : {"teacher/final", "teacher_int8", "taylor", "taylor_int8"})
    EXPECT_NE(last_output.find("  8x32  " + tmp.str(dir) + " "), std::string::npos) << dir << "\n" << last_output;
  // A labelled method refuses unlabelled text, naming the flag.
  EXPECT_NE(run({"compress", "--method", "taylor", "--model", tmp.str("teacher/final"), "--out", tmp.str("bad"), "--target", "0.5",
                 "--text", testing::shared_path("data/glue/SST-2/dev.tsv")},
                "bad.log"),
            0);
  EXPECT_NE(last_output.find("--text is unlabelled"), std::string::npos) << last_output;
  // And an output directory that already holds a model is refused, not overwritten.
  EXPECT_NE(run({"compress", "--method", "magnitude", "--model", tmp.str("teacher/final"), "--out", tmp.str("magnitude"), "--target",
                 "0.3"},
                "again.log"),
            0);
  EXPECT_NE(last_output.find("already holds a model"), std::string::npos) << last_output;
}

TEST_F(Compress, APretrainedEncoderWithoutAHeadGetsOneForTheTask) {
  // The teacher as a pretrained checkpoint would be: BertModel, no classifier weights.
  namespace fs = std::filesystem;
  const auto encoder = tmp.str("encoder");
  fs::create_directories(encoder);
  for (const char* f : {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"})
    if (fs::exists(tmp.str(std::string("teacher/final/") + f))) fs::copy_file(tmp.str(std::string("teacher/final/") + f), encoder + "/" + f);
  auto config = json("teacher/final/config.json");
  config["architectures"] = {"BertModel"};
  for (const char* k : {"id2label", "label2id", "problem_type"}) config.erase(k);
  std::ofstream(encoder + "/config.json") << config.dump(2);
  auto weights = io::read_safetensors(tmp.str("teacher/final/model.safetensors")).tensors;
  ASSERT_EQ(weights.erase("classifier.weight") + weights.erase("classifier.bias"), 2u);
  io::write_safetensors(encoder + "/model.safetensors", weights);
  // Without --task there is nothing to size a head for: refused, saying so.
  EXPECT_NE(run({"compress", "--method", "magnitude", "--model", encoder, "--out", tmp.str("headless"), "--target", "0.5"}, "headless.log"), 0);
  EXPECT_NE(last_output.find("has no classification head: give --task"), std::string::npos) << last_output;
  ASSERT_EQ(run({"compress", "--method", "magnitude", "--model", encoder, "--out", tmp.str("headed"), "--target", "0.5", "--task", "sst2"},
                "headed.log"),
            0)
      << last_output;
  EXPECT_NE(last_output.find("a new 2-label head is initialised for sst2"), std::string::npos) << last_output;
  // The encoder was pruned exactly as the teacher's is: the same kept structure.
  auto from_teacher = compress("teacher_pruned", {"--method", "magnitude", "--target", "0.5"});
  EXPECT_EQ(json("headed/compression.json")["kept"], from_teacher["kept"]);
  EXPECT_EQ(eval("headed")["examples"], 64);
}

TEST_F(Compress, SlicingNothingScoresLikeTheTeacherAndSlicingKeepsTheRoundedWidth) {
  const std::vector<std::string> data = {"--task", "sst2", "--data", testing::shared_path("data/glue"), "--examples", "64"};
  auto zero = data;
  zero.insert(zero.end(), {"--method", "slice", "--target", "0"});
  auto s0 = compress("slice0", zero);
  EXPECT_EQ(s0["hidden_kept"], 32);
  auto teacher = eval("teacher/final"), sliced = eval("slice0");
  EXPECT_DOUBLE_EQ(sliced["accuracy"].get<double>(), teacher["accuracy"].get<double>());
  // 25% of 32: 24 dims at every site; the residual maps are full 24 x 24 matrices now.
  auto quarter = data;
  quarter.insert(quarter.end(), {"--method", "slice", "--target", "0.25"});
  auto s25 = compress("slice25", quarter);
  EXPECT_EQ(s25["hidden_kept"], 24);
  auto config = json("slice25/config.json");
  EXPECT_EQ(config["sculpt_packed"]["embedding_dim"], 24);
  eval("slice25");
}

TEST_F(Compress, KMeansCodebooksLoadAndExactCodesRoundTrip) {
  auto k2 = compress("kmeans2", {"--method", "kmeans", "--bits", "2"});
  EXPECT_EQ(k2["bits"], 2);
  // The 2-D tensors with more than 4 entries: embeddings (3), and per layer q, k, v, o, fc1, fc2
  // (12), pooler and classifier (2).
  EXPECT_EQ(k2["tensors_coded"], 17);
  // Sizes in closed form from the teacher's own tensors: 2 bits an entry plus 4 float centroids.
  auto weights = io::read_safetensors(tmp.str("teacher/final/model.safetensors")).tensors;
  double before = 0, after = 0;
  for (const auto& [name, w] : weights) {
    const double bytes = static_cast<double>(w.numel() * w.element_size());
    before += bytes;
    after += w.dim() >= 2 && w.numel() > 4 ? static_cast<double>((w.numel() * 2 + 7) / 8 + 16) : bytes;
  }
  EXPECT_DOUBLE_EQ(k2["achieved"]["bytes_before"].get<double>(), before);
  EXPECT_DOUBLE_EQ(k2["achieved"]["bytes_after"].get<double>(), after);
  const auto e2 = eval("kmeans2");
  // Coding the coded model again with more centroids than its values is exact: same scores.
  ASSERT_EQ(run({"compress", "--method", "kmeans", "--bits", "3", "--model", tmp.str("kmeans2"), "--out", tmp.str("kmeans3"), "--progress",
                 "off"},
                "kmeans3.log"),
            0)
      << last_output;
  auto k3 = json("kmeans3/compression.json");
  EXPECT_EQ(k3["tensors_coded_exactly"], k3["tensors_coded"]);
  EXPECT_DOUBLE_EQ(k3["achieved"]["relative_error"].get<double>(), 0.0);
  const auto e3 = eval("kmeans3");
  EXPECT_DOUBLE_EQ(e3["accuracy"].get<double>(), e2["accuracy"].get<double>());

  // Centroid fine-tuning (Deep Compression): the 2-bit model trains on SST-2 with its weights
  // shared; final/ is a codebook directory with the k-means indices unchanged and moved
  // centroids, and a run killed after update 6 resumes to the same centroids bit for bit.
  auto finetune = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> a = {"run", std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_bert_finetune.yaml", "run.output_root=" + tmp.str(),
                                  "run.name=" + name, "model.path=" + tmp.str("kmeans2"), "codebook.method=finetune", "train.duration=10u"};
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a, name + ".log");
  };
  ASSERT_EQ(finetune("centroids", {}), 0) << last_output;
  EXPECT_NE(last_output.find("centroid fine-tuning of 17 shared matrices"), std::string::npos) << last_output;
  ASSERT_FALSE(std::filesystem::exists(tmp.str("centroids/final/model.safetensors")));
  const auto before_ft = io::read_codebook_contents(tmp.str("kmeans2/model.codebook.safetensors"));
  const auto after_ft = io::read_codebook_contents(tmp.str("centroids/final/model.codebook.safetensors"));
  ASSERT_EQ(after_ft.coded.size(), 17u);
  int moved = 0;
  for (const auto& [name, c] : before_ft.coded) {
    const auto& t = after_ft.coded.at(name);
    EXPECT_TRUE(torch::equal(t.indices, c.indices)) << name << ": the indices changed";
    moved += torch::equal(t.codebook, c.codebook) ? 0 : 1;
  }
  EXPECT_EQ(moved, 17) << "every coded matrix's centroids trained";
  eval("centroids/final");
  EXPECT_EQ(finetune("centroids_crashed", {"debug.crash_after_step=6"}), 128 + SIGKILL) << last_output;
  ASSERT_EQ(run({"resume", tmp.str("centroids_crashed")}, "centroids_resume.log"), 0) << last_output;
  const auto resumed = io::read_codebook_contents(tmp.str("centroids_crashed/final/model.codebook.safetensors"));
  for (const auto& [name, c] : after_ft.coded)
    EXPECT_TRUE(torch::equal(resumed.coded.at(name).codebook, c.codebook)) << name << " differs after resume";
  // A dense directory has no codebook to fine-tune: refused, naming it.
  EXPECT_NE(finetune("no_codebook", {"model.path=" + tmp.str("teacher/final")}), 0);
  EXPECT_NE(last_output.find("needs a k-means directory"), std::string::npos) << last_output;
}

// k-means works on the weight file alone, so any family's directory: T5 and OPT fixtures coded at
// 2 bits, then coded again at 3 bits (exact: at most 4 values a tensor), give `sculpt forward`
// the same outputs bit for bit, and differ from the original's.
TEST(CompressFamilies, KMeansCodesT5AndOptDirectoriesThatForwardLoads) {
  if (testing::shared_path("fixtures/hf/t5_small").empty()) GTEST_SKIP() << "needs ../shared/fixtures/hf (SCULPT_SHARED)";
  testing::TempDir tmp;
  for (const std::string family : {"t5_small", "opt_causal_lm"}) {
    const std::string dir = testing::shared_path("fixtures/hf/" + family), inputs = dir + "/reference.safetensors";
    auto code = [&](const std::string& from, const std::string& out, const char* bits) {
      std::string log;
      EXPECT_EQ(testing::run_cli({"compress", "--method", "kmeans", "--bits", bits, "--model", from, "--out", tmp.str(out), "--progress", "off"},
                                 tmp.str(out + ".log"), &log),
                0)
          << log;
    };
    auto forward = [&](const std::string& model, const std::string& out) {
      std::string log;
      EXPECT_EQ(testing::run_cli({"forward", "--model", model, "--inputs", inputs, "--out", tmp.str(out)}, tmp.str(out + ".log"), &log), 0)
          << log;
      return io::read_safetensors(tmp.str(out)).tensors;
    };
    code(dir, family + "_2", "2");
    code(tmp.str(family + "_2"), family + "_3", "3");
    auto k3 = nlohmann::json::parse(std::ifstream(tmp.str(family + "_3/compression.json")));
    EXPECT_EQ(k3["tensors_coded_exactly"], k3["tensors_coded"]) << family;
    auto a = forward(tmp.str(family + "_2"), family + "_2.out.safetensors");
    auto b = forward(tmp.str(family + "_3"), family + "_3.out.safetensors");
    auto original = forward(dir, family + ".out.safetensors");
    ASSERT_TRUE(a.count("logits")) << family;
    EXPECT_TRUE(torch::equal(a["logits"], b["logits"])) << family;
    EXPECT_FALSE(torch::equal(a["logits"], original["logits"])) << family;
  }
}

// SliceGPT through the CLI on the pre-LN OPT and the T5 v1.1 fixtures: with nothing removed the rotated directory
// gives `sculpt forward` the original's logits (the rotation is exact and survives save/load);
// at 37.5% removed d_model is 40 and the parameter count is the closed form of that width; the
// post-LN fixture is refused with the reason.
TEST(CompressFamilies, OptAndT5HeadsAndNeuronsPruneOneShotAndForward) {
  if (testing::shared_path("fixtures/hf/opt_causal_lm").empty() || testing::shared_path("data/glue/SST-2").empty())
    GTEST_SKIP() << "needs ../shared/fixtures/hf and data/glue (SCULPT_SHARED)";
  testing::TempDir tmp;
  const std::string dir = testing::shared_path("fixtures/hf/opt_causal_lm");
  // Half of the 8 heads and of the 256 neurons (2 layers): half of the 65,536 attention and FFN
  // map weights; the stream (64) stays, so embeddings and norms stay whole.
  for (const std::string method : {"magnitude", "taylor"}) {
    std::string log;
    ASSERT_EQ(testing::run_cli({"compress", "--method", method, "--model", dir, "--out", tmp.str(method), "--target", "0.5", "--text",
                                testing::shared_path("data/glue/SST-2/dev.tsv"), "--examples", "16", "--progress", "off"},
                               tmp.str(method + ".log"), &log),
              0)
        << log;
    const auto report = nlohmann::json::parse(std::ifstream(tmp.str(method + "/compression.json")));
    EXPECT_EQ(report["achieved"]["map_weights_before"], 65536);
    EXPECT_EQ(report["achieved"]["map_weights_after"], 32768);
    // Less the removed heads' q, k, v biases (4 x 3 x 16) and the removed neurons' fc1 biases (128).
    EXPECT_EQ(report["achieved"]["parameters_before"].get<int64_t>() - report["achieved"]["parameters_after"].get<int64_t>(),
              32768 + 4 * 3 * 16 + 128)
        << report.dump();
    EXPECT_EQ(method == "taylor", report["scores"].get<std::string>().find("causal-LM loss") != std::string::npos) << report.dump();
    EXPECT_EQ(testing::run_cli({"forward", "--model", tmp.str(method), "--inputs", dir + "/reference.safetensors", "--out",
                                tmp.str(method + ".out.safetensors")},
                               tmp.str(method + ".forward.log"), &log),
              0)
        << log;
  }
  // T5 by magnitude: half of the 16 self-attention heads (4 x 64 x 16 weights each) and of the 512
  // neurons (2 maps of 64, 3 when gated) of its 4 blocks; cross-attention stays.
  for (const std::string fixture : {"t5_small", "t5_v1_1"}) {
    const std::string t5 = testing::shared_path("fixtures/hf/" + fixture);
    std::string log;
    ASSERT_EQ(testing::run_cli({"compress", "--method", "magnitude", "--model", t5, "--out", tmp.str(fixture), "--target", "0.5",
                                "--progress", "off"},
                               tmp.str(fixture + ".log"), &log),
              0)
        << log;
    const auto a = nlohmann::json::parse(std::ifstream(tmp.str(fixture + "/compression.json")))["achieved"];
    const int64_t maps = fixture == "t5_v1_1" ? 3 : 2;
    EXPECT_EQ(a["map_weights_before"].get<int64_t>() - a["map_weights_after"].get<int64_t>(), 8 * 4 * 64 * 16 + 256 * maps * 64) << a.dump();
    EXPECT_EQ(testing::run_cli({"forward", "--model", tmp.str(fixture), "--inputs", t5 + "/reference.safetensors", "--out",
                                tmp.str(fixture + ".out.safetensors")},
                               tmp.str(fixture + ".forward.log"), &log),
              0)
        << log;
  }
  // Activations (APoZ) of 16 SST-2 dev lines through both stacks of the T5, through the OPT:
  // the same halves go.
  for (const auto& [model, out] : {std::pair{testing::shared_path("fixtures/hf/t5_v1_1"), std::string("t5_apoz")}, {dir, std::string("opt_apoz")}}) {
    std::string log;
    ASSERT_EQ(testing::run_cli({"compress", "--method", "activation", "--statistic", "apoz", "--model", model, "--out", tmp.str(out), "--target",
                                "0.5", "--text", testing::shared_path("data/glue/SST-2/dev.tsv"), "--examples", "16", "--progress", "off"},
                               tmp.str(out + ".log"), &log),
              0)
        << log;
    const auto report = nlohmann::json::parse(std::ifstream(tmp.str(out + "/compression.json")));
    EXPECT_NE(report["scores"].get<std::string>().find("1 - APoZ for neurons"), std::string::npos) << report.dump();
    int heads = 0;
    for (const auto& h : report["kept"]["heads"]) heads += h.get<int>();
    EXPECT_EQ(heads, out == "t5_apoz" ? 8 : 4) << report.dump();
  }
  // Zero-shot Taylor on a T5: span corruption of 16 SST-2 dev lines (no labels); the same halves go
  // as by magnitude, and the result forwards.
  std::string log;
  const std::string t5 = testing::shared_path("fixtures/hf/t5_small");
  ASSERT_EQ(testing::run_cli({"compress", "--method", "taylor", "--model", t5, "--out", tmp.str("t5_taylor"), "--target", "0.5", "--text",
                              testing::shared_path("data/glue/SST-2/dev.tsv"), "--examples", "16", "--progress", "off"},
                             tmp.str("t5_taylor.log"), &log),
            0)
      << log;
  const auto report = nlohmann::json::parse(std::ifstream(tmp.str("t5_taylor/compression.json")));
  EXPECT_EQ(report["achieved"]["map_weights_before"].get<int64_t>() - report["achieved"]["map_weights_after"].get<int64_t>(),
            8 * 4 * 64 * 16 + 256 * 2 * 64)
      << report.dump();
  EXPECT_NE(report["scores"].get<std::string>().find("sequence-to-sequence loss over"), std::string::npos) << report.dump();
  EXPECT_NE(report["data"].get<std::string>().find("span-corrupted"), std::string::npos) << report.dump();
  EXPECT_EQ(testing::run_cli({"forward", "--model", tmp.str("t5_taylor"), "--inputs", t5 + "/reference.safetensors", "--out",
                              tmp.str("t5_taylor.out.safetensors")},
                             tmp.str("t5_taylor.forward.log"), &log),
            0)
      << log;
}

TEST(CompressFamilies, SliceRotatesPreLnOptAndT5ThatForwardLoads) {
  if (testing::shared_path("fixtures/hf/opt_causal_lm").empty() || testing::shared_path("data/glue/SST-2").empty())
    GTEST_SKIP() << "needs ../shared/fixtures/hf and data/glue (SCULPT_SHARED)";
  testing::TempDir tmp;
  const std::string dir = testing::shared_path("fixtures/hf/opt_causal_lm"), inputs = dir + "/reference.safetensors";
  auto slice = [&](const std::string& model, const std::string& out, const char* target) {
    std::string log;
    const int rc = testing::run_cli({"compress", "--method", "slice", "--model", model, "--out", tmp.str(out), "--target", target, "--task",
                                     "sst2", "--data", testing::shared_path("data/glue"), "--examples", "16"},
                                    tmp.str(out + ".log"), &log);
    return std::make_pair(rc, log);
  };
  auto forward_on = [&](const std::string& model, const std::string& out, const std::string& on) {
    std::string log;
    EXPECT_EQ(testing::run_cli({"forward", "--model", model, "--inputs", on, "--out", tmp.str(out)}, tmp.str(out + ".log"), &log), 0)
        << log;
    return io::read_safetensors(tmp.str(out)).tensors;
  };
  auto forward = [&](const std::string& model, const std::string& out) { return forward_on(model, out, inputs); };
  auto [rc0, log0] = slice(dir, "rotated", "0");
  ASSERT_EQ(rc0, 0) << log0;
  auto original = forward(dir, "original.safetensors");
  auto rotated = forward(tmp.str("rotated"), "rotated.safetensors");
  EXPECT_TRUE(testing::all_close(rotated["logits"], original["logits"], 1e-4, 1e-4));
  // Nothing removed: the calibration perplexity is the original's (the rotation is exact).
  auto rotated_report = nlohmann::json::parse(std::ifstream(tmp.str("rotated/compression.json")))["achieved"];
  EXPECT_NEAR(rotated_report["calibration_perplexity_after"].get<double>(), rotated_report["calibration_perplexity_before"].get<double>(),
              1e-4 * rotated_report["calibration_perplexity_before"].get<double>());
  auto config = nlohmann::json::parse(std::ifstream(tmp.str("rotated/config.json")));
  EXPECT_EQ(config["sculpt_rotated"]["norm_width"], 64);

  auto [rc1, log1] = slice(dir, "sliced", "0.375");
  ASSERT_EQ(rc1, 0) << log1;
  auto report = nlohmann::json::parse(std::ifstream(tmp.str("sliced/compression.json")));
  const auto& a = report["achieved"];
  EXPECT_EQ(a["hidden_after"], 40);
  // V = 1000 tokens, 66 position rows, L = 2, 4 x 16 attention dims, F = 128; the tied head
  // becomes the folded lm_head with the final norm's bias.
  auto params = [](int64_t d, bool folded_head) {
    const int64_t V = 1000, P = 66, inner = 64, F = 128;
    const int64_t layer = 3 * (inner * d + inner) + (d * inner + d) + (F * d + F) + (d * F + d) + (folded_head ? 0 : 4 * d);
    return V * d + P * d + 2 * layer + (folded_head ? V * d + V : 2 * d);
  };
  EXPECT_EQ(a["parameters_before"], params(64, false));
  EXPECT_EQ(a["parameters_after"], params(40, true));
  const int64_t blocks_40 = 2 * (3 * (64 * 40 + 64) + (40 * 64 + 40) + (128 * 40 + 128) + (40 * 128 + 40));
  EXPECT_EQ(a["block_parameters_after"], blocks_40);

  auto sliced = forward(tmp.str("sliced"), "sliced.safetensors");
  EXPECT_EQ(sliced["logits"].sizes(), original["logits"].sizes());
  // `sculpt bench infer` times the original beside the sliced model (one row each, its size).
  std::string bench;
  ASSERT_EQ(testing::run_cli({"bench", "infer", "--model", dir, "--model", tmp.str("sliced"), "--shape", "2x8", "--steps", "1", "--warmup",
                              "0", "--device", "cpu"},
                             tmp.str("bench.log"), &bench),
            0)
      << bench;
  EXPECT_NE(bench.find(std::to_string(params(64, false)) + " params"), std::string::npos) << bench;
  EXPECT_NE(bench.find(std::to_string(params(40, true)) + " params"), std::string::npos) << bench;

  auto [rc2, log2] = slice(testing::shared_path("fixtures/hf/opt_350m_style"), "post_ln", "0.25");
  EXPECT_NE(rc2, 0);
  EXPECT_NE(log2.find("post-LayerNorm OPT"), std::string::npos) << log2;

  // T5 v1.1 the same way: rotated at 0 it forwards the original's logits; at 37.5% d_model is 40.
  const std::string t5 = testing::shared_path("fixtures/hf/t5_v1_1"), t5_inputs = t5 + "/reference.safetensors";
  auto t5_forward = [&](const std::string& model, const std::string& out) { return forward_on(model, out, t5_inputs); };
  auto [rc3, log3] = slice(t5, "t5_rotated", "0");
  ASSERT_EQ(rc3, 0) << log3;
  EXPECT_TRUE(testing::all_close(t5_forward(tmp.str("t5_rotated"), "t5_rotated.safetensors")["logits"],
                                 t5_forward(t5, "t5.safetensors")["logits"], 1e-4, 1e-4));
  auto [rc4, log4] = slice(t5, "t5_sliced", "0.375");
  ASSERT_EQ(rc4, 0) << log4;
  auto t5_report = nlohmann::json::parse(std::ifstream(tmp.str("t5_sliced/compression.json")));
  EXPECT_EQ(t5_report["achieved"]["hidden_after"], 40);
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(tmp.str("t5_sliced/config.json")))["sculpt_rotated"]["norm_width"], 64);
  EXPECT_EQ(t5_forward(tmp.str("t5_sliced"), "t5_sliced.safetensors")["logits"].sizes(),
            t5_forward(t5, "t5_again.safetensors")["logits"].sizes());
}

}  // namespace
}  // namespace sculpt
