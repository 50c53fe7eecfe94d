#include <fstream>

#include "sculpt/data/squad.h"
#include "sculpt/metrics/squad_metrics.h"
#include "sculpt/tokenizers/wordpiece.h"
#include "test_util.h"

namespace sculpt {
namespace {

TEST(SquadMetrics, OfficialNormalisationAndScores) {
  EXPECT_EQ(metrics::normalize_answer("The  Denver Broncos!"), "denver broncos");
  EXPECT_EQ(metrics::normalize_answer("an apple, a pear"), "apple pear");
  std::vector<metrics::SquadPrediction> pred = {
      {"q1", "Denver Broncos", 0}, {"q2", "the Panthers", 0}, {"q3", "Santa Clara, California", 0}};
  std::vector<metrics::SquadGold> gold = {{"q1", {"Denver Broncos", "The Denver Broncos"}},
                                          {"q2", {"Carolina Panthers"}},
                                          {"q3", {"Santa Clara", "Levi's Stadium"}}};
  auto m = metrics::squad_metrics(pred, gold, false);
  EXPECT_NEAR(m["exact"], 100.0 / 3, 1e-9);
  // F1: 1, 2*(1*0.5)/1.5 = 2/3, 2*(2/3*1)/(5/3) = 0.8
  EXPECT_NEAR(m["f1"], 100.0 * (1 + 2.0 / 3 + 0.8) / 3, 1e-9);
  EXPECT_EQ(m["total"], 3);
}

TEST(SquadMetrics, Version2SplitsAndBestThreshold) {
  std::vector<metrics::SquadPrediction> pred = {{"q1", "Denver Broncos", -5}, {"q2", "the Panthers", -1},
                                                {"q3", "Santa Clara, California", 0.5}, {"q4", "", 2}, {"q5", "something", 1}};
  std::vector<metrics::SquadGold> gold = {{"q1", {"Denver Broncos"}}, {"q2", {"Carolina Panthers"}},
                                          {"q3", {"Santa Clara"}}, {"q4", {}}, {"q5", {}}};
  auto m = metrics::squad_metrics(pred, gold, true);
  EXPECT_NEAR(m["exact"], 100.0 * 2 / 5, 1e-9);
  EXPECT_NEAR(m["HasAns_exact"], 100.0 / 3, 1e-9);
  EXPECT_NEAR(m["NoAns_exact"], 50.0, 1e-9);
  EXPECT_EQ(m["HasAns_total"], 3);
  // Abstaining everywhere scores 2; answering q1 (diff -5) adds 1 -> best 3/5 at threshold -5.
  EXPECT_NEAR(m["best_exact"], 60.0, 1e-9);
  EXPECT_EQ(m["best_exact_thresh"], -5);
}

TEST(Squad, OffsetsPointBackIntoTheText) {
  SCULPT_REQUIRE_SHARED(dir, "models/bert-base-uncased-tokenizer");
  auto tok = tokenizers::WordPieceTokenizer::from_dir(dir);
  const std::string text = "Super Bowl 50 was played in Santa Clara, California — Levi's Stadium (1920s). Café!";
  std::vector<std::pair<int64_t, int64_t>> off;
  auto ids = tok->ids_with_offsets(text, off);
  EXPECT_EQ(ids, tok->ids(text));  // same tokens as the plain path
  ASSERT_EQ(ids.size(), off.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = tok->id_to_token(ids[i]);
    if (piece.rfind("##", 0) == 0) piece = piece.substr(2);
    std::string span = text.substr(static_cast<size_t>(off[i].first), static_cast<size_t>(off[i].second - off[i].first));
    if (piece == "cafe") continue;  // accent stripped: the span is "Café"
    std::string lowered;
    for (char c : span) lowered += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(lowered, piece) << "token " << i;
  }
}

TEST(Squad, RealDevFeaturesRecoverTheAnswers) {
  SCULPT_REQUIRE_SHARED(path, "data/squad/dev-v1.1.json");
  SCULPT_REQUIRE_SHARED(dir, "models/bert-base-uncased-tokenizer");
  auto examples = data::read_squad(path);
  EXPECT_EQ(examples.size(), 10570u);
  EXPECT_EQ(examples[0].answers[0], "Denver Broncos");
  EXPECT_EQ(examples[0].context.substr(examples[0].answer_starts[0], 14), "Denver Broncos");
  examples.resize(300);
  auto tok = tokenizers::WordPieceTokenizer::from_dir(dir);
  data::SquadFeatureOptions o{128, 32, 32};
  auto features = data::make_squad_features(*tok, examples, o);
  EXPECT_GT(features.size(), examples.size());  // long contexts give several windows
  size_t found = 0, exact = 0;
  for (const auto& f : features) {
    EXPECT_LE(f.ids.size(), 128u);
    if (f.start_position == 0) continue;
    ++found;
    const auto& ex = examples[f.example];
    auto b = f.offsets[static_cast<size_t>(f.start_position)].first, e = f.offsets[static_cast<size_t>(f.end_position)].second;
    const std::string got = ex.context.substr(static_cast<size_t>(b), static_cast<size_t>(e - b));
    exact += metrics::exact_match(got, ex.answers[0]);
  }
  EXPECT_GT(found, 250u);
  // The misses are answers inside a token ("gold" in "golden", "8" in "18"), which no
  // token-level span can give, as with HF's run_qa.
  EXPECT_GE(static_cast<double>(exact) / static_cast<double>(found), 0.95);
  // Post-processing with logits that point at the gold span recovers it exactly.
  std::vector<std::vector<float>> s, t;
  for (const auto& f : features) {
    s.emplace_back(f.ids.size(), 0.f), t.emplace_back(f.ids.size(), 0.f);
    s.back()[static_cast<size_t>(f.start_position)] = 10, t.back()[static_cast<size_t>(f.end_position)] = 10;
  }
  auto preds = data::postprocess_squad(examples, features, s, t, {});
  auto m = metrics::squad_metrics(preds, data::squad_gold(examples), false);
  EXPECT_GT(m["exact"], 95.0);
}

TEST(Squad, FeaturesAreTheSameAtAnyThreadCount) {
  SCULPT_REQUIRE_SHARED(path, "data/squad/dev-v1.1.json");
  SCULPT_REQUIRE_SHARED(dir, "models/bert-base-uncased-tokenizer");
  auto examples = data::read_squad(path);
  examples.resize(1000);  // chunk boundaries fall inside paragraphs
  auto tok = tokenizers::WordPieceTokenizer::from_dir(dir);
  const data::SquadFeatureOptions o{128, 32, 32};
  const auto serial = data::make_squad_features_range(*tok, examples, 0, examples.size(), o);
  for (int threads : {1, 2, 5}) {
    const auto got = data::make_squad_features(*tok, examples, o, threads);
    ASSERT_EQ(got.size(), serial.size()) << threads;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].example, serial[i].example) << threads << " threads, feature " << i;
      ASSERT_EQ(got[i].ids, serial[i].ids) << threads << " threads, feature " << i;
      ASSERT_EQ(got[i].offsets, serial[i].offsets);
      ASSERT_EQ(got[i].start_position, serial[i].start_position);
      ASSERT_EQ(got[i].end_position, serial[i].end_position);
    }
  }
}

}  // namespace
}  // namespace sculpt
