// Every line of both tok_opt_bpe fixture files (HF GPT2Tokenizer with OPT's settings, with and
// without BOS), and the real GPT-2 encoder.json + vocab.bpe.
#include <fstream>

#include "sculpt/io/hf_dir.h"
#include "sculpt/tokenizers/bpe.h"
#include "sculpt/tokenizers/jsonl.h"
#include "sculpt/tokenizers/unicode.h"
#include "tokenizer_parity.h"

namespace sculpt {
namespace {

class BpeParity : public ::testing::TestWithParam<std::string> {};

TEST_P(BpeParity, EveryLineMatches) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/tok_opt_bpe");
  auto settings = io::read_json(dir + "/settings.json")["files"][GetParam()];
  auto config = io::read_json(dir + "/tokenizer_config.json");
  tokenizers::BpeOptions o;
  o.add_bos_token = settings["add_bos_token"];
  o.bos = settings["bos_token"], o.eos = settings["eos_token"], o.unk = settings["unk_token"], o.pad = settings["pad_token"];
  tokenizers::BpeTokenizer tok(dir + "/vocab.json", dir + "/merges.txt", o, &config);
  testing::expect_jsonl_parity(tok, dir + "/" + GetParam());
}

INSTANTIATE_TEST_SUITE_P(Files, BpeParity, ::testing::Values("encodings.jsonl", "encodings_no_bos.jsonl"),
                         [](const auto& info) { return info.param.substr(0, info.param.find('.')); });

TEST(Bpe, Gpt2PreTokenizerPattern) {
  auto pieces = tokenizers::BpeTokenizer::pretokenize(unicode::decode("Hello  world's 42x!!\n\n  end  "));
  std::vector<std::string> got;
  for (const auto& p : pieces) got.push_back(unicode::encode(p));
  EXPECT_EQ(got, (std::vector<std::string>{"Hello", " ", " world", "'s", " 42", "x", "!!", "\n\n ", " end", "  "}));
}

TEST(Bpe, RealGpt2Files) {
  SCULPT_REQUIRE_SHARED(dir, "models/gpt2-bpe-tokenizer");
  auto tok = tokenizers::load_tokenizer(dir);
  EXPECT_EQ(tok->vocab_size(), 50257u);
  // GPT-2 ids, as HF's GPT2Tokenizer gives them.
  EXPECT_EQ(tok->encode("Hello world").input_ids, (std::vector<int64_t>{15496, 995}));
  EXPECT_EQ(tok->encode(" The quick brown fox").input_ids, (std::vector<int64_t>{383, 2068, 7586, 21831}));
  EXPECT_EQ(tok->encode("<|endoftext|>").input_ids, (std::vector<int64_t>{50256}));
  auto invalid = tok->encode(std::string("a\xff" "b"));  // invalid UTF-8 becomes U+FFFD
  EXPECT_EQ(invalid.tokens.size(), 3u);
}

}  // namespace
}  // namespace sculpt
