#include <fstream>

#include "sculpt/core/error.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/metrics/glue_metrics.h"
#include "test_util.h"

namespace sculpt {
namespace {

std::map<int, int> label_counts(const std::vector<data::GlueExample>& rows) {
  std::map<int, int> c;
  for (const auto& r : rows) ++c[static_cast<int>(r.label)];
  return c;
}

TEST(Glue, RealSplitsHaveTheDocumentedRowsAndLabels) {
  SCULPT_REQUIRE_SHARED(root, "data/glue");
  // Row and label counts from shared/data/SOURCES.md; label ids in HF's order.
  auto sst2 = data::read_glue_split(data::glue_task("sst2"), root, "dev");
  EXPECT_EQ(sst2.size(), 872u);
  EXPECT_EQ(label_counts(sst2), (std::map<int, int>{{0, 428}, {1, 444}}));
  EXPECT_EQ(sst2[0].text_a, "it 's a charming and often affecting journey . ");
  auto cola = data::read_glue_split(data::glue_task("CoLA"), root, "train");
  EXPECT_EQ(cola.size(), 8551u);
  EXPECT_EQ(label_counts(cola), (std::map<int, int>{{0, 2528}, {1, 6023}}));
  auto mrpc = data::read_glue_split(data::glue_task("mrpc"), root, "train");
  EXPECT_EQ(mrpc.size(), 3668u);
  EXPECT_EQ(label_counts(mrpc), (std::map<int, int>{{0, 1194}, {1, 2474}}));
  ASSERT_TRUE(mrpc[0].text_b.has_value());
  auto rte = data::read_glue_split(data::glue_task("rte"), root, "dev");
  EXPECT_EQ(label_counts(rte), (std::map<int, int>{{0, 146}, {1, 131}}));  // entailment = 0
  auto qnli = data::read_glue_split(data::glue_task("qnli"), root, "dev");
  EXPECT_EQ(label_counts(qnli), (std::map<int, int>{{0, 2702}, {1, 2761}}));
  auto wnli = data::read_glue_split(data::glue_task("wnli"), root, "train");
  EXPECT_EQ(label_counts(wnli), (std::map<int, int>{{0, 323}, {1, 312}}));
  auto stsb = data::read_glue_split(data::glue_task("sts-b"), root, "dev");
  EXPECT_EQ(stsb.size(), 1500u);
  EXPECT_FLOAT_EQ(stsb[0].label, 5.0f);
  EXPECT_FLOAT_EQ(stsb[1].label, 4.75f);
  EXPECT_EQ(stsb[0].text_a, "A man with a hard hat is dancing.");
}

TEST(Glue, LabelMappingsArePinned) {
  EXPECT_EQ(data::glue_task("mnli").labels, (std::vector<std::string>{"contradiction", "entailment", "neutral"}));
  EXPECT_EQ(data::glue_task("mnli").dev_splits, (std::vector<std::string>{"dev_matched", "dev_mismatched"}));
  EXPECT_EQ(data::glue_task("qnli").labels, (std::vector<std::string>{"entailment", "not_entailment"}));
  EXPECT_TRUE(data::glue_task("stsb").is_regression());
  EXPECT_EQ(data::glue_tasks().size(), 9u);
  EXPECT_THROW(data::glue_task("squad"), Error);
}

TEST(Glue, MnliAndQqpLayoutsAndTestSetsWithoutLabels) {
  testing::TempDir tmp;
  std::filesystem::create_directories(tmp.path / "MNLI");
  std::filesystem::create_directories(tmp.path / "QQP");
  {
    std::ofstream f(tmp.str("MNLI/dev_matched.tsv"));
    f << "index\tpromptID\tpairID\tgenre\ts1p\ts2p\ts1b\ts2b\tsentence1\tsentence2\tlabel1\tgold_label\n"
      << "0\t1\t1n\tgov\tx\tx\tx\tx\tThe cat sat.\tA cat sat.\tentailment\tentailment\n"
      << "1\t2\t2n\tgov\tx\tx\tx\tx\tA b.\tC d.\tneutral\tcontradiction\n";
    std::ofstream q(tmp.str("QQP/dev.tsv"));
    q << "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tWhy?\tHow?\t1\n";
    std::ofstream t(tmp.str("QQP/test.tsv"));
    t << "id\tquestion1\tquestion2\n0\tWhat?\tWho?\n";
  }
  auto mnli = data::read_glue_split(data::glue_task("mnli"), tmp.str(), "dev_matched");
  ASSERT_EQ(mnli.size(), 2u);
  EXPECT_EQ(mnli[0].label, 1);  // entailment
  EXPECT_EQ(mnli[1].label, 0);  // gold_label (last column) wins: contradiction
  EXPECT_EQ(*mnli[1].text_b, "C d.");
  auto qqp = data::read_glue_split(data::glue_task("qqp"), tmp.str(), "dev");
  EXPECT_EQ(qqp[0].text_a, "Why?");
  EXPECT_EQ(qqp[0].label, 1);
  auto test = data::read_glue_split(data::glue_task("qqp"), tmp.str(), "test");
  EXPECT_EQ(test[0].text_a, "What?");
  EXPECT_EQ(*test[0].text_b, "Who?");
  EXPECT_EQ(test[0].label, -1);
}

TEST(Glue, MalformedRowNamesFileAndLine) {
  testing::TempDir tmp;
  std::filesystem::create_directories(tmp.path / "RTE");
  {
    std::ofstream f(tmp.str("RTE/train.tsv"));
    f << "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\n";
    std::ofstream g(tmp.str("RTE/dev.tsv"));
    g << "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n";
  }
  try {
    data::read_glue_split(data::glue_task("rte"), tmp.str(), "train");
    FAIL() << "accepted a malformed row";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("RTE/train.tsv:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("columns"), std::string::npos) << e.what();
  }
  try {
    data::read_glue_split(data::glue_task("rte"), tmp.str(), "dev");
    FAIL() << "accepted an unknown label";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("RTE/dev.tsv:2: label 'maybe'"), std::string::npos) << e.what();
  }
}

TEST(Metrics, HandComputedValues) {
  std::vector<int> gold = {1, 1, 0, 0, 1, 0}, pred = {1, 0, 0, 1, 1, 0};
  EXPECT_DOUBLE_EQ(metrics::accuracy(pred, gold), 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(metrics::f1_binary(pred, gold), 2.0 * 2 / (2.0 * 2 + 1 + 1));  // tp 2, fp 1, fn 1
  // tp 2, tn 2, fp 1, fn 1: (4 - 1) / sqrt(3*3*3*3) = 1/3
  EXPECT_NEAR(metrics::matthews_corrcoef(pred, gold), 1.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(metrics::matthews_corrcoef({1, 1, 1}, {1, 0, 1}), 0.0);
  // sxy = 10.75, sxx = 5, syy = 23.1875
  EXPECT_NEAR(metrics::pearson({1, 2, 3, 4}, {2, 4, 6, 8.5}), 10.75 / std::sqrt(5 * 23.1875), 1e-12);
  // Ties share ranks: x ranks 1, 2.5, 2.5, 4; y = 1..4 -> scipy.stats.spearmanr = 0.9486833
  EXPECT_NEAR(metrics::spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 0.9486832980505138, 1e-12);
  auto m = metrics::glue_metrics("mrpc", {1, 0, 0, 1, 1, 0}, {1, 1, 0, 0, 1, 0});
  EXPECT_DOUBLE_EQ(m["combined_score"], (m["accuracy"] + m["f1"]) / 2);
  EXPECT_EQ(metrics::glue_main_metric("cola"), "matthews_correlation");
  EXPECT_EQ(metrics::glue_main_metric("stsb"), "combined_score");
}

std::vector<data::Example> fake_examples(size_t n) {
  std::vector<data::Example> v;
  for (size_t i = 0; i < n; ++i) v.push_back({std::vector<int32_t>(3 + i % 7, 5), std::vector<uint8_t>(3 + i % 7, 0), float(i % 2)});
  return v;
}

TEST(Batching, EpochPlanIsDeterministicAndCoversEveryExample) {
  auto ex = data::lengths_of(fake_examples(103));
  data::PlanOptions o{10, true, true, false};
  auto a = data::plan_epoch(ex, o, 5, 0), b = data::plan_epoch(ex, o, 5, 0), c = data::plan_epoch(ex, o, 5, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<size_t> all;
  for (const auto& batch : a) all.insert(all.end(), batch.begin(), batch.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 103u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i);
  o.drop_last = true;
  EXPECT_EQ(data::plan_epoch(ex, o, 5, 0).size(), 10u);
}

TEST(Batching, CollatePadsDynamically) {
  auto ex = fake_examples(4);
  auto batch = data::collate(ex, {0, 3}, 0, false);
  EXPECT_EQ(batch.input_ids.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(batch.attention_mask.sum().item<int64_t>(), 9);
  EXPECT_EQ(batch.input_ids[0][5].item<int64_t>(), 0);
  EXPECT_EQ(batch.labels[1].item<int64_t>(), 1);
  EXPECT_EQ(data::collate(ex, {0}, 0, true).labels.scalar_type(), torch::kFloat);
}

}  // namespace
}  // namespace sculpt
