// Shared check for the tokenizer fixtures: every line of a HF encodings*.jsonl file encodes
// to the same ids, token types, masks and token strings.
#pragma once
#include <fstream>

#include "sculpt/tokenizers/jsonl.h"
#include "test_util.h"

namespace sculpt::testing {

inline void expect_jsonl_parity(const tokenizers::Tokenizer& tok, const std::string& path, int min_lines = 30) {
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto expected = nlohmann::json::parse(line);
    auto got = tokenizers::encode_request(tok, expected);
    for (const char* field : {"input_ids", "token_type_ids", "attention_mask", "special_tokens_mask", "tokens"})
      EXPECT_EQ(got[field], expected[field]) << path << " line " << n + 1 << " field " << field << ": " << expected["text"];
    ++n;
  }
  EXPECT_GE(n, min_lines) << path;
}

}  // namespace sculpt::testing
