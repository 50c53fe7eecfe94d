// Every line of both tok_t5_sentencepiece fixture files (HF T5Tokenizer, legacy and
// non-legacy), and the real T5 spiece.model beside libtorch in the same process.
#include <fstream>

#include "sculpt/io/hf_dir.h"
#include "sculpt/tokenizers/jsonl.h"
#include "sculpt/tokenizers/sentencepiece.h"
#include "tokenizer_parity.h"

namespace sculpt {
namespace {

class SentencePieceParity : public ::testing::TestWithParam<std::string> {};

TEST_P(SentencePieceParity, EveryLineMatches) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/tok_t5_sentencepiece");
  auto settings = io::read_json(dir + "/settings.json")["files"][GetParam()];
  auto config = io::read_json(dir + "/tokenizer_config.json");
  tokenizers::SentencePieceOptions o;
  o.legacy = settings["legacy"];
  config["legacy"] = o.legacy;
  tokenizers::SentencePieceTokenizer tok(dir + "/spiece.model", o, &config);
  EXPECT_EQ(tok.vocab_size(), settings["len_tokenizer"].get<size_t>());
  EXPECT_EQ(tok.pad_id(), settings["pad_token_id"].get<int64_t>());
  testing::expect_jsonl_parity(tok, dir + "/" + GetParam());
}

INSTANTIATE_TEST_SUITE_P(Files, SentencePieceParity, ::testing::Values("encodings.jsonl", "encodings_nonlegacy.jsonl"),
                         [](const auto& info) { return info.param.substr(0, info.param.find('.')); });

TEST(SentencePiece, RealT5ModelBesideLibtorch) {
  SCULPT_REQUIRE_SHARED(dir, "models/t5-tokenizer");
  auto tok = tokenizers::load_tokenizer(dir);
  // As DEVELOPERS.md records for t5-small's spiece.model: "Hello world" -> 8774 296 (+ </s> = 1).
  auto e = tok->encode("Hello world");
  EXPECT_EQ(e.input_ids, (std::vector<int64_t>{8774, 296, 1}));
  EXPECT_EQ(tok->vocab_size(), 32100u);
  EXPECT_EQ(tok->token_to_id("<extra_id_0>"), 32099);
  EXPECT_EQ(tok->pad_id(), 0);
  auto p = tok->encode("translate English to German: The house is wonderful.");
  EXPECT_EQ(p.tokens.back(), "</s>");
  EXPECT_EQ(p.tokens.front(), "\xe2\x96\x81translate");
}

}  // namespace
}  // namespace sculpt
