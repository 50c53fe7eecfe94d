// BERT's tokenizer, identical to HF's (slow) BertTokenizer: basic tokenization (clean text,
// CJK split, NFC, lowercasing and accent stripping as configured, punctuation split), then
// greedy longest-match WordPiece. Special-token strings in the text are matched whole.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "sculpt/tokenizers/tokenizer.h"

namespace sculpt::tokenizers {

struct WordPieceOptions {
  bool do_lower_case = true;
  int strip_accents = -1;  // -1: follow do_lower_case (HF's None), 0: never, 1: always
  bool tokenize_chinese_chars = true;
  size_t max_input_chars_per_word = 100;
  std::string unk = "[UNK]", cls = "[CLS]", sep = "[SEP]", pad = "[PAD]", mask = "[MASK]";
  std::vector<std::string> never_split;
};

class WordPieceTokenizer : public Tokenizer {
 public:
  WordPieceTokenizer(const std::string& vocab_path, WordPieceOptions options);
  // Settings from DIR/tokenizer_config.json (or tokenizer.json's normalizer), vocab DIR/vocab.txt.
  static std::unique_ptr<WordPieceTokenizer> from_dir(const std::string& dir);

  std::vector<std::string> tokenize(const std::string& text) const override;
  int64_t token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override { return inverse_.at(static_cast<size_t>(id)); }
  Encoding encode(const std::string& text, const std::optional<std::string>& pair = std::nullopt,
                  const EncodeOptions& options = {}) const override;
  int64_t pad_id() const override { return token_to_id(options_.pad); }
  size_t vocab_size() const override { return inverse_.size(); }

  // Tokenize many texts (e.g. a GLUE split) into ids only.
  std::vector<int64_t> ids(const std::string& text) const;
  // Ids with the byte span [begin, end) of the original text each token came from (SQuAD).
  std::vector<int64_t> ids_with_offsets(const std::string& text, std::vector<std::pair<int64_t, int64_t>>& offsets) const;

 private:
  std::vector<std::string> basic_tokenize(const std::u32string& text) const;
  void wordpiece(const std::u32string& word, std::vector<std::string>& out) const;

  WordPieceOptions options_;
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> inverse_;
  std::vector<std::u32string> specials_;  // matched whole in the raw text
};

}  // namespace sculpt::tokenizers
