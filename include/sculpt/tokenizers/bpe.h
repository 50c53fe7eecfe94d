// Byte-level BPE (GPT-2 / OPT), identical to HF's (slow) GPT2Tokenizer: bytes mapped to
// printable unicode, GPT-2's pre-tokenization pattern, ranked merges from merges.txt, OPT's
// BOS </s> prepended when add_bos_token is set. Invalid UTF-8 input is replaced (U+FFFD).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "sculpt/tokenizers/added_tokens.h"
#include "sculpt/tokenizers/tokenizer.h"

namespace sculpt::tokenizers {

struct BpeOptions {
  bool add_bos_token = false;
  bool add_prefix_space = false;
  std::string bos = "<|endoftext|>", eos = "<|endoftext|>", unk = "<|endoftext|>", pad;
};

class BpeTokenizer : public Tokenizer {
 public:
  // vocab: vocab.json / encoder.json; merges: merges.txt / vocab.bpe.
  BpeTokenizer(const std::string& vocab_path, const std::string& merges_path, BpeOptions options,
               const nlohmann::json* config);
  static std::unique_ptr<BpeTokenizer> from_dir(const std::string& dir);

  std::vector<std::string> tokenize(const std::string& text) const override;
  int64_t token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override;
  Encoding encode(const std::string& text, const std::optional<std::string>& pair = std::nullopt,
                  const EncodeOptions& options = {}) const override;
  int64_t pad_id() const override { return token_to_id(options_.pad.empty() ? options_.eos : options_.pad); }
  size_t vocab_size() const override { return inverse_.size(); }

  // GPT-2's pre-tokenizer on its own (exposed for tests).
  static std::vector<std::u32string> pretokenize(const std::u32string& text);

 private:
  std::vector<std::string> bpe(const std::string& word) const;
  std::vector<int64_t> ids(const std::string& text) const;

  BpeOptions options_;
  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<int64_t, std::string> inverse_;
  std::map<std::pair<std::string, std::string>, size_t> ranks_;
  std::string byte_to_unicode_[256];
  AddedTokens added_;
};

}  // namespace sculpt::tokenizers
