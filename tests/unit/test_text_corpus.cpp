// Text corpora in blocks for masked language modelling: run_mlm's group_texts on hand-computed
// ids, the same blocks for any piece size and thread count, and the cache's hit, miss and refusal.
#include <torch/torch.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "sculpt/core/error.h"
#include "sculpt/data/glue.h"
#include "sculpt/data/text_corpus.h"
#include "sculpt/tokenizers/tokenizer.h"
#include "sculpt/train/token_data.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace sculpt {
namespace {

std::vector<std::vector<int32_t>> blocks_of(const data::TokenBlocks& b) {
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i < b.size(); ++i) out.emplace_back(b.block(i), b.block(i) + b.block_size());
  return out;
}

std::vector<std::vector<int32_t>> write_and_read(const tokenizers::Tokenizer& tok, const std::string& text, data::CorpusOptions o,
                                                 int threads = 1) {
  testing::TempDir tmp;
  { std::ofstream(tmp.str("corpus.txt"), std::ios::binary) << text; }
  data::write_corpus_blocks(tok, tmp.str("corpus.txt"), o, tmp.str("blocks.safetensors"), "k", "test", threads);
  return blocks_of(data::TokenBlocks(tmp.str("blocks.safetensors"), "k", tok.vocab_size()));
}

// bert-base-uncased: [CLS] 101, [SEP] 102, hello 7592, world 2088. Lines "hello", "hello world", ""
// encode to 3 + 4 + 2 tokens.
TEST(TextCorpus, GroupTextsCutsEachGroupIntoBlocksAndDropsItsRemainder) {
  SCULPT_REQUIRE_SHARED(dir, "models/bert-base-uncased-tokenizer");
  const auto tok = tokenizers::load_tokenizer(dir);
  const std::string text = "hello\nhello world\n\n";
  data::CorpusOptions o;
  o.block_size = 4;
  o.group_samples = 0;  // one group: 9 tokens -> 2 blocks, [SEP] of the empty line dropped
  EXPECT_EQ(write_and_read(*tok, text, o),
            (std::vector<std::vector<int32_t>>{{101, 7592, 102, 101}, {7592, 2088, 102, 101}}));
  o.group_samples = 2;  // groups of 7 and 2 tokens -> 1 block and none
  EXPECT_EQ(write_and_read(*tok, text, o), (std::vector<std::vector<int32_t>>{{101, 7592, 102, 101}}));
  o.group_samples = 0;
  o.sample_by = "paragraph";  // "hello\nworld" and "hello": 4 + 3 tokens -> 1 block
  EXPECT_EQ(write_and_read(*tok, "hello\nworld\n\n\nhello\n", o), (std::vector<std::vector<int32_t>>{{101, 7592, 2088, 102}}));
  o.sample_by = "sentence";
  EXPECT_THROW(write_and_read(*tok, text, o), Error);
}

// SST-2's sentences as a corpus: every line encoded alone, groups of 1,000 lines concatenated and
// cut; the streamed file equals that for pieces of 1 KB or 32 MB and 1 or 3 threads.
TEST(TextCorpus, StreamedBlocksEqualTheReferenceAtAnyPieceSizeAndThreadCount) {
  SCULPT_REQUIRE_SHARED(dir, "models/bert-base-uncased-tokenizer");
  SCULPT_REQUIRE_SHARED(glue, "data/glue");
  const auto tok = tokenizers::load_tokenizer(dir);
  std::string text;
  std::vector<std::string> lines;
  for (const auto& row : data::read_glue_split(data::glue_task("sst2"), glue, "dev")) {
    lines.push_back(row.text_a);
    text += row.text_a + "\n";
  }
  ASSERT_EQ(lines.size(), 872u);
  for (int i = 0; i < 3; ++i)
    for (size_t j = 0; j < 872; ++j) lines.push_back(lines[j]), text += lines[j] + "\n";  // 3,488 lines: 4 groups
  data::CorpusOptions o;
  o.block_size = 64;
  std::vector<std::vector<int32_t>> want;
  for (size_t g = 0; g < lines.size(); g += 1000) {
    std::vector<int32_t> group;
    for (size_t i = g; i < std::min(lines.size(), g + 1000); ++i)
      for (auto id : tok->encode(lines[i]).input_ids) group.push_back(static_cast<int32_t>(id));
    for (size_t b = 0; b + 64 <= group.size(); b += 64) want.emplace_back(group.begin() + b, group.begin() + b + 64);
  }
  ASSERT_GT(want.size(), 1000u);
  EXPECT_EQ(write_and_read(*tok, text, o, 1), want);
  o.piece_bytes = 1024;
  EXPECT_EQ(write_and_read(*tok, text, o, 3), want);
}

// Through the cache: filed once, read back mapped; with the cache off nothing is left behind;
// ids past a smaller vocabulary are refused.
TEST(TextCorpus, CacheHitsAndRefusesIdsPastTheVocabulary) {
  SCULPT_REQUIRE_SHARED(dir, "models/bert-base-uncased-tokenizer");
  const auto tok = tokenizers::load_tokenizer(dir);
  testing::TempDir tmp;
  {
    std::ofstream out(tmp.str("corpus.txt"));
    for (int i = 0; i < 200; ++i) out << "the quick brown fox jumps over the lazy dog number " << i << "\n";
  }
  data::CorpusOptions o;
  o.block_size = 32;
  ::setenv("SCULPT_CACHE", tmp.str("cache").c_str(), 1);
  const train::TokenSource source{*tok, dir, "off"};
  const auto first = blocks_of(train::load_corpus_blocks(source, tmp.str("corpus.txt"), o));
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(tmp.str("cache/tokens"))) files += e.path().extension() == ".safetensors";
  EXPECT_EQ(files, 1u);
  EXPECT_EQ(blocks_of(train::load_corpus_blocks(source, tmp.str("corpus.txt"), o)), first);
  ::setenv("SCULPT_CACHE", "off", 1);
  EXPECT_EQ(blocks_of(train::load_corpus_blocks(source, tmp.str("corpus.txt"), o)), first);
  ::unsetenv("SCULPT_CACHE");
  for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
    EXPECT_NE(e.path().filename().string().rfind("sculpt_corpus_" + std::to_string(::getpid()), 0), 0u) << e.path();
  ASSERT_FALSE(first.empty());

  data::write_corpus_blocks(*tok, tmp.str("corpus.txt"), o, tmp.str("b.safetensors"), "k", "test");
  try {
    data::TokenBlocks(tmp.str("b.safetensors"), "k", 1000);
    FAIL() << "accepted ids past a vocabulary of 1000";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("column 'blocks' holds 1996 at 1, outside the vocabulary of 1000"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace sculpt
