// Parallel tokenization gives the serial ids whatever the thread count; the token cache hits on
// the same inputs, misses on a changed option or data file, and refuses and rebuilds a corrupt
// file.
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "sculpt/core/error.h"
#include "sculpt/core/parallel.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/data/glue_text.h"
#include "sculpt/data/squad.h"
#include "sculpt/data/token_cache.h"
#include "sculpt/io/safetensors.h"
#include "sculpt/tokenizers/wordpiece.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/tokenizers/tokenizer.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/token_data.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace sculpt {
namespace {

bool same(const std::vector<data::Example>& a, const std::vector<data::Example>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].ids != b[i].ids || a[i].types != b[i].types || a[i].label != b[i].label) return false;
  return true;
}

TEST(Tokenization, ParallelEncodingEqualsTheSerialIdsAtAnyThreadCount) {
  SCULPT_REQUIRE_SHARED(tok, "models/bert-base-uncased-tokenizer");
  SCULPT_REQUIRE_SHARED(glue, "data/glue");
  const auto tokenizer = tokenizers::load_tokenizer(tok);
  const auto rows = data::read_glue_split(data::glue_task("mrpc"), glue, "train");
  ASSERT_EQ(rows.size(), 3668u);
  tokenizers::EncodeOptions o;
  o.truncation = "longest_first";
  o.max_length = 64;
  std::vector<data::Example> serial;
  for (const auto& row : rows) {
    auto e = tokenizer->encode(row.text_a, row.text_b, o);
    serial.push_back({{e.input_ids.begin(), e.input_ids.end()}, {e.token_type_ids.begin(), e.token_type_ids.end()}, row.label});
  }
  size_t last = 0;
  for (int threads : {1, 2, 3, 7}) {
    auto got = data::encode_glue(*tokenizer, rows, 64, threads, [&](size_t done) { last = done; });
    EXPECT_TRUE(same(got, serial)) << threads << " threads";
    EXPECT_EQ(last, rows.size()) << "the last progress report counts every row";
  }
}

// `tokenizers`' longest_first (tokenizers/src/utils/truncation.rs): 84 + 109 tokens into 128 - 3
// specials: the shorter keeps 125 / 2 = 62, the longer 63, whichever comes first. (Transformers
// 4's slow loop gave 63 / 62 when the first was the shorter.) The remaining cases: only the
// longer is cut.
TEST(Tokenization, LongestFirstTruncationIsTokenizersOwn) {
  tokenizers::EncodeOptions o;
  o.truncation = "longest_first";
  o.max_length = 128;
  auto cut = [&](size_t a, size_t b) {
    std::vector<int64_t> x(a, 1), y(b, 2);
    tokenizers::truncate_pair(x, &y, 3, o);
    return std::make_pair(x.size(), y.size());
  };
  EXPECT_EQ(cut(84, 109), std::make_pair(size_t{62}, size_t{63}));
  EXPECT_EQ(cut(109, 84), std::make_pair(size_t{63}, size_t{62}));
  EXPECT_EQ(cut(200, 20), std::make_pair(size_t{105}, size_t{20}));
  EXPECT_EQ(cut(20, 200), std::make_pair(size_t{20}, size_t{105}));
  EXPECT_EQ(cut(60, 65), std::make_pair(size_t{60}, size_t{65}));  // fits: untouched
  EXPECT_EQ(cut(63, 63), std::make_pair(size_t{62}, size_t{63}));
}

TEST(Tokenization, AChunkThatThrowsFailsTheWholeEncodingWithItsMessage) {
  std::vector<int> seen(1000, 0);
  try {
    parallel_chunks(1000, 10, 3, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) seen[i] = 1;
      if (b == 500) fail("row {} is bad", b);
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "row 500 is bad");
  }
}

std::vector<data::Example> three() {
  return {{{101, 7, 102}, {0, 0, 0}, 1.0f}, {{101, 102}, {0, 0}, 0.0f}, {{101, 9, 102, 8, 102}, {0, 0, 0, 1, 1}, 2.5f}};
}

TEST(TokenCache, HitsMissesOnAnotherKeyAndRebuildsACorruptFile) {
  testing::TempDir tmp;
  const std::string dir = tmp.str("tokens");
  int builds = 0;
  auto build = [&] { ++builds; return three(); };
  auto first = data::cached_examples(dir, "k1", "test", 200, build);
  EXPECT_FALSE(first.hit);
  EXPECT_TRUE(same(first.examples, three()));
  auto second = data::cached_examples(dir, "k1", "test", 200, build);
  EXPECT_TRUE(second.hit);
  EXPECT_EQ(builds, 1);
  EXPECT_TRUE(same(second.examples, three()));
  EXPECT_FALSE(data::cached_examples(dir, "k2", "test", 200, build).hit);
  EXPECT_EQ(builds, 2);

  // Corrupt: truncated, then another key's file under this name, then ids past the vocabulary.
  const std::string file = dir + "/k1.safetensors";
  fs::resize_file(file, fs::file_size(file) - 5);
  EXPECT_THROW(data::read_token_file(file, "k1", 200), Error);
  auto rebuilt = data::cached_examples(dir, "k1", "test", 200, build);
  EXPECT_FALSE(rebuilt.hit);
  EXPECT_EQ(builds, 3);
  EXPECT_TRUE(data::cached_examples(dir, "k1", "test", 200, build).hit);
  fs::copy_file(dir + "/k2.safetensors", file, fs::copy_options::overwrite_existing);
  try {
    data::read_token_file(file, "k1", 200);
    FAIL() << "read another key's file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("filed under key k2, expected k1"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(data::cached_examples(dir, "k1", "test", 200, build).hit);
  try {
    data::read_token_file(file, "k1", 100);
    FAIL() << "accepted id 101 in a vocabulary of 100";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds 101 at 0, outside the vocabulary of 100"), std::string::npos) << e.what();
  }
  EXPECT_EQ(builds, 4);
  // No cache directory: always built.
  EXPECT_FALSE(data::cached_examples("", "k1", "test", 200, build).hit);
  EXPECT_EQ(builds, 5);
}

TEST(TokenCache, DigestSeesEveryByteAndTheBoundaries) {
  EXPECT_NE(data::Digest().add("ab").add("c").hex(), data::Digest().add("a").add("bc").hex());
  EXPECT_EQ(data::Digest().add("abc").hex(), data::Digest().add("abc").hex());
  std::string text(1000, 'x');
  const std::string base = data::Digest().add(text).hex();
  for (size_t at : {0u, 7u, 8u, 999u}) {
    std::string changed = text;
    changed[at] = 'y';
    EXPECT_NE(data::Digest().add(changed).hex(), base) << at;
  }
}

// GlueData files each split once under a key of its inputs: the same recipe hits, a changed
// max_seq_len or a changed data file misses, and the cached examples equal fresh ones.
TEST(TokenCache, GlueSplitsAreKeyedByEveryInput) {
  SCULPT_REQUIRE_SHARED(glue, "data/glue/SST-2");
  testing::TempDir tmp;
  fs::create_directories(tmp.str("glue/SST-2"));
  for (const char* f : {"train.tsv", "dev.tsv"}) fs::copy_file(glue + "/" + f, tmp.str(std::string("glue/SST-2/") + f));
  ::setenv("SCULPT_CACHE", tmp.str("cache").c_str(), 1);
  auto count = [&] {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(tmp.str("cache/tokens"))) n += e.path().extension() == ".safetensors";
    return n;
  };
  const std::string recipe = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_bert_finetune.yaml";
  const std::string root = "data.root=" + tmp.str("glue");
  auto r = recipe::load_recipe(recipe, {root});
  train::GlueData fresh(r);
  EXPECT_EQ(count(), 2u);  // train and dev
  train::GlueData again(r);
  EXPECT_EQ(count(), 2u);
  EXPECT_TRUE(same(again.train, fresh.train));
  EXPECT_TRUE(same(again.dev.front().second, fresh.dev.front().second));
  ASSERT_EQ(fresh.train.size(), 160u);
  train::GlueData shorter(recipe::load_recipe(recipe, {root, "data.max_seq_len=16"}));
  EXPECT_EQ(count(), 4u);
  EXPECT_EQ(shorter.train[0].ids.size(), std::min<size_t>(16, fresh.train[0].ids.size()));
  {
    std::ofstream(tmp.str("glue/SST-2/dev.tsv"), std::ios::app) << "an added sentence\t1\n";
  }
  train::GlueData changed(r);
  EXPECT_EQ(count(), 5u);  // dev missed, train hit
  train::GlueData dev_only(r, train::GlueData::Splits::dev);
  EXPECT_TRUE(dev_only.train.empty());
  EXPECT_EQ(count(), 5u);
  ::unsetenv("SCULPT_CACHE");
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

size_t files_in(const std::string& dir) {
  size_t n = 0;
  if (fs::exists(dir))
    for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".safetensors";
  return n;
}

bool same_features(const std::vector<data::SquadFeature>& a, const std::vector<data::SquadFeature>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].example != b[i].example || a[i].ids != b[i].ids || a[i].types != b[i].types || a[i].offsets != b[i].offsets ||
        a[i].start_position != b[i].start_position || a[i].end_position != b[i].end_position)
      return false;
  return true;
}

// SQuAD features (ids, types, context spans, answer positions) come back from the cache equal to
// fresh ones; another doc_stride misses; a file whose spans leave the context is refused.
TEST(TokenCache, SquadFeaturesRoundTripAndBadSpansAreRefused) {
  SCULPT_REQUIRE_SHARED(path, "data/squad/dev-v1.1.json");
  SCULPT_REQUIRE_SHARED(dir, "models/bert-base-uncased-tokenizer");
  testing::TempDir tmp;
  ::setenv("SCULPT_CACHE", tmp.str("cache").c_str(), 1);
  auto examples = data::read_squad(path);
  examples.resize(200);
  const auto tok = tokenizers::WordPieceTokenizer::from_dir(dir);
  const train::TokenSource source{*tok, dir, "off"};
  const data::SquadFeatureOptions o{128, 32, 32};
  const auto fresh = data::make_squad_features(*tok, examples, o, 1);
  ASSERT_GT(fresh.size(), examples.size());  // precondition: long contexts give several windows per question
  const auto first = train::load_squad_features(source, *tok, path, examples, o);
  EXPECT_EQ(files_in(tmp.str("cache/tokens")), 1u);
  const auto second = train::load_squad_features(source, *tok, path, examples, o);
  EXPECT_EQ(files_in(tmp.str("cache/tokens")), 1u);
  EXPECT_TRUE(same_features(first, fresh));
  EXPECT_TRUE(same_features(second, fresh));
  train::load_squad_features(source, *tok, path, examples, {128, 48, 32});
  EXPECT_EQ(files_in(tmp.str("cache/tokens")), 2u);
  ::unsetenv("SCULPT_CACHE");

  auto bad = fresh;
  const std::string file = tmp.str("bad.safetensors");
  bad[5].offsets.back() = {3, 100000};  // past the end of its context
  data::write_squad_features(file, "k", "test", bad);
  try {
    data::read_squad_features(file, "k", tok->vocab_size(), examples);
    FAIL() << "accepted a span outside the context";
  } catch (const Error& e) {
    const std::string want = fmt::format("feature 5 token {} spans bytes 3..100000 of a {}-byte context", bad[5].offsets.size() - 1,
                                         examples[bad[5].example].context.size());
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
  bad = fresh;
  bad[7].example = 200;  // one past the questions given
  data::write_squad_features(file, "k", "test", bad);
  EXPECT_THROW(data::read_squad_features(file, "k", tok->vocab_size(), examples), Error);
  bad = fresh;
  bad[9].start_position = 500;
  data::write_squad_features(file, "k", "test", bad);
  EXPECT_THROW(data::read_squad_features(file, "k", tok->vocab_size(), examples), Error);
}

// T5's text pairs: sources and targets of different lengths (an empty target for dev rows) come
// back exactly; an id past the vocabulary and a wrong column type are refused by name.
TEST(TokenCache, TextPairsRoundTripAndDamagedColumnsAreRefused) {
  testing::TempDir tmp;
  const std::vector<data::TextPair> pairs = {{{5, 6, 7, 1}, {9, 1}, 1.0f}, {{8, 1}, {}, 0.0f}, {{}, {3}, 2.2f}};
  const std::string file = tmp.str("pairs.safetensors");
  data::write_text_pairs(file, "k", "test", pairs);
  const auto back = data::read_text_pairs(file, "k", 10);
  ASSERT_EQ(back.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back[i].source, pairs[i].source) << i;
    EXPECT_EQ(back[i].target, pairs[i].target) << i;
    EXPECT_EQ(back[i].label, pairs[i].label) << i;
  }
  try {
    data::read_text_pairs(file, "k", 9);
    FAIL() << "accepted id 9 in a vocabulary of 9";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("column 'target' holds 9 at 0, outside the vocabulary of 9"), std::string::npos)
        << e.what();
  }
  io::write_safetensors(file, {{"source", torch::tensor({5, 1}, torch::kInt64)}},
                        {{"format", "sculpt-tokens-1"}, {"key", "k"}});
  try {
    data::read_text_pairs(file, "k", 10);
    FAIL() << "read a file with no labels";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no 1-d Float column 'labels'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sculpt
