// Every line of the three tok_bert_wordpiece fixture files (HF BertTokenizer encodings):
// ids, token types, attention mask, special-tokens mask and token strings.
#include <fstream>

#include "sculpt/io/hf_dir.h"
#include "sculpt/tokenizers/jsonl.h"
#include "sculpt/tokenizers/wordpiece.h"
#include "tokenizer_parity.h"

namespace sculpt {
namespace {

tokenizers::WordPieceOptions options_from_settings(const nlohmann::json& s) {
  tokenizers::WordPieceOptions o;
  o.do_lower_case = s.value("do_lower_case", true);
  if (s.contains("strip_accents") && !s["strip_accents"].is_null()) o.strip_accents = s["strip_accents"].get<bool>() ? 1 : 0;
  o.tokenize_chinese_chars = s.value("tokenize_chinese_chars", true);
  o.max_input_chars_per_word = s.value("max_input_chars_per_word", 100);
  return o;
}

class WordPieceParity : public ::testing::TestWithParam<std::string> {};

TEST_P(WordPieceParity, EveryLineMatches) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/tok_bert_wordpiece");
  auto settings = io::read_json(dir + "/settings.json")["files"][GetParam()];
  tokenizers::WordPieceTokenizer tok(dir + "/vocab.txt", options_from_settings(settings));
  testing::expect_jsonl_parity(tok, dir + "/" + GetParam());
}

INSTANTIATE_TEST_SUITE_P(Files, WordPieceParity,
                         ::testing::Values("encodings.jsonl", "encodings_cased.jsonl", "encodings_keep_accents.jsonl"),
                         [](const auto& info) {
                           std::string s = info.param;
                           return s.substr(0, s.find('.'));
                         });

TEST(WordPiece, DefaultSettingsComeFromTokenizerConfig) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/tok_bert_wordpiece");
  auto tok = tokenizers::load_tokenizer(dir);
  auto e = tok->encode("Hello, world!");
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"[CLS]", "he", "##ll", "##o", ",", "wor", "##ld", "!", "[SEP]"}));
}

TEST(WordPiece, RealBertBaseUncasedVocabulary) {
  SCULPT_REQUIRE_SHARED(dir, "models/bert-base-uncased-tokenizer");
  auto tok = tokenizers::load_tokenizer(dir);
  EXPECT_EQ(tok->vocab_size(), 30522u);
  auto e = tok->encode("Hello, world! The quick brown fox.", std::string("Unaffable."));
  // bert-base-uncased ids, as HF's BertTokenizer gives them.
  EXPECT_EQ(e.input_ids, (std::vector<int64_t>{101, 7592, 1010, 2088, 999, 1996, 4248, 2829, 4419, 1012, 102, 14477,
                                                 20961, 3468, 1012, 102}));
  EXPECT_EQ(e.token_type_ids.back(), 1);
}

}  // namespace
}  // namespace sculpt
